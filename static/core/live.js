/* Live regions: <div data-live-url="/partial/" data-live-socket="/ws/..."> re-fetch their partial
   whenever the server rings the socket's doorbell. The socket only says "changed"; the data comes
   from the normal, permission-checked view. Falls back to polling while the socket is down. */
(function () {
  'use strict';
  var POLL_MS = 10000;

  function refresh(region) {
    if (region._inflight) { region._again = true; return; }
    region._inflight = true;
    fetch(region.dataset.liveUrl, { headers: { 'HX-Request': 'true' }, credentials: 'same-origin' })
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (html) {
        if (html !== null) {
          region.innerHTML = html;
          if (window.htmx) { window.htmx.process(region); }
          region.dispatchEvent(new CustomEvent('live:updated', { bubbles: true }));
        }
      })
      .catch(function () {})
      .finally(function () {
        region._inflight = false;
        if (region._again) { region._again = false; setTimeout(function () { refresh(region); }, 150); }
      });
  }

  function connect(region, attempt) {
    var scheme = location.protocol === 'https:' ? 'wss://' : 'ws://';
    var socket = new WebSocket(scheme + location.host + region.dataset.liveSocket);
    var timer = null;
    socket.onopen = function () { attempt = 0; if (region._poll) { clearInterval(region._poll); region._poll = null; } };
    socket.onmessage = function () {
      // Coalesce bursts (a training step, an event and a checkpoint arrive together).
      if (timer) { return; }
      timer = setTimeout(function () { timer = null; refresh(region); }, 200);
    };
    socket.onclose = function (event) {
      if (event.code === 4403 || region.dataset.liveDone === 'true') { return; }
      if (!region._poll) { region._poll = setInterval(function () { refresh(region); }, POLL_MS); }
      var delay = Math.min(30000, 500 * Math.pow(2, attempt));
      setTimeout(function () { connect(region, attempt + 1); }, delay);
    };
  }

  function start() {
    document.querySelectorAll('[data-live-url][data-live-socket]').forEach(function (region) {
      if (!region._live) { region._live = true; connect(region, 0); }
    });
  }
  if (document.readyState === 'loading') { document.addEventListener('DOMContentLoaded', start); } else { start(); }
})();
