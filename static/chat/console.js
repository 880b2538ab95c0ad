/* Agent console: live conversation list and live conversation view.
   The socket rings; the page re-fetches the server-rendered partial (the database is the truth).
   Bot tokens and typing are shown as they arrive. Text always goes in with textContent. */
(function () {
  'use strict';
  var PING_MS = 30000;

  function connect(path, onMessage) {
    var attempt = 0, socket = null, pinger = null;
    function open() {
      var scheme = location.protocol === 'https:' ? 'wss://' : 'ws://';
      socket = new WebSocket(scheme + location.host + path);
      socket.onopen = function () {
        attempt = 0;
        pinger = setInterval(function () { send({ type: 'ping' }); }, PING_MS);
      };
      socket.onmessage = function (event) { onMessage(JSON.parse(event.data)); };
      socket.onclose = function (event) {
        clearInterval(pinger);
        if (event.code === 4403) { return; }
        setTimeout(open, Math.min(15000, 500 * Math.pow(2, attempt++)));
      };
    }
    function send(frame) { if (socket && socket.readyState === 1) { socket.send(JSON.stringify(frame)); } }
    open();
    return { send: send };
  }

  function debounce(fn, ms) {
    var timer = null;
    return function () { clearTimeout(timer); timer = setTimeout(fn, ms); };
  }

  // --- the list page -------------------------------------------------------------------------
  var list = document.getElementById('conversation-list');
  if (list) {
    var alertBox = document.getElementById('console-alert');
    var title = document.title;
    var refreshList = debounce(function () {
      var url = location.pathname + location.search;
      window.htmx.ajax('GET', url, { target: '#conversation-list', swap: 'innerHTML' });
    }, 250);
    connect('/ws/chat/console/', function (frame) {
      if (frame.type !== 'changed') { return; }
      refreshList();
      if (frame.alert) {
        alertBox.textContent = 'A conversation needs a human.';
        alertBox.hidden = false;
        document.title = '(!) ' + title;
        setTimeout(function () { alertBox.hidden = true; document.title = title; }, 10000);
      }
    });
  }

  // --- the conversation page -----------------------------------------------------------------
  var root = document.getElementById('conversation');
  if (!root) { return; }
  var refresh = debounce(function () {
    window.htmx.ajax('GET', root.dataset.liveUrl, { target: '#conversation-live', swap: 'innerHTML' });
  }, 150);
  var typingTimer = null;

  function draft() { return document.getElementById('bot-draft'); }

  var channel = connect(root.dataset.socket, function (frame) {
    if (frame.type === 'token') {
      var bubble = draft();
      if (bubble && root.dataset.status === 'bot') {
        bubble.hidden = false;
        bubble.querySelector('.ttext').textContent += frame.text;
      }
    } else if (frame.type === 'typing') {
      var indicator = document.getElementById('typing-indicator');
      if (indicator) {
        indicator.textContent = frame.typing ? (frame.who === 'customer' ? 'The customer is typing…' : 'The bot is typing…') : '';
      }
    } else if (frame.type === 'message' || frame.type === 'status' || frame.type === 'sentiment') {
      if (frame.type === 'status') {
        root.dataset.status = frame.status;
        var stale = draft();
        if (stale && frame.status !== 'bot') { stale.hidden = true; stale.querySelector('.ttext').textContent = ''; }
      }
      refresh();
      if (frame.type === 'message' && !document.hidden) { channel.send({ type: 'read' }); }
    }
  });

  var reply = document.getElementById('reply-text');
  if (reply) {
    reply.addEventListener('input', function () {
      if (!typingTimer) { channel.send({ type: 'typing', typing: true }); }
      clearTimeout(typingTimer);
      typingTimer = setTimeout(function () { channel.send({ type: 'typing', typing: false }); typingTimer = null; }, 2500);
    });
    reply.addEventListener('keydown', function (event) {
      if (event.key === 'Enter' && (event.ctrlKey || event.metaKey)) {
        event.preventDefault();
        document.getElementById('reply-send').click();
      }
    });
  }
  function showLatest() {
    var transcript = document.getElementById('transcript');
    if (transcript) { transcript.scrollTop = transcript.scrollHeight; }
  }
  document.body.addEventListener('htmx:afterSwap', showLatest);
  showLatest();
})();
