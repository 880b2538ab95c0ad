/* GPT Store chat widget — the embed script a business pastes on its own site:

     <script src="https://<gpt store>/static/chat/widget.js" data-widget="wk_…" async></script>

   It draws a launcher button and a hidden <iframe> panel (served by GPT Store, which talks to the
   server) inside a Shadow DOM root, so the host page's CSS cannot reach them and ours cannot leak.
   Public API, usable at once (calls made before the widget is ready are queued):
     GPTStore.open(), GPTStore.close(), GPTStore.identify({id, name, email, hash})
   Messages with the iframe are {gptstore: true, type, …}, always checked against GPT Store's origin. */
(function () {
  'use strict';

  if (window.GPTStore && window.GPTStore.version) { return; }  // pasted twice: the first copy wins

  // async scripts can have a null currentScript (older Safari/Firefox): fall back to a search.
  const script = document.currentScript ||
    document.querySelector('script[data-widget][src*="/static/chat/widget.js"]') ||
    document.querySelector('script[data-widget]');
  const key = script && script.getAttribute('data-widget');
  let origin = null;
  try { origin = new URL(script.src, location.href).origin; } catch (e) { /* no src: origin stays null */ }

  const state = {
    phase: 'loading',     // loading → ready (drawn) | off (not allowed, or broken)
    open: false, identity: null, frameReady: false, unread: 0, focusOnOpen: false,
  };
  const pending = [];     // API calls made while loading
  let els = null;         // {host, launcher, panel, iframe, badge, unreadText}

  function warn(text) { if (window.console) { console.warn('GPT Store chat: ' + text); } }

  // --- public API ----------------------------------------------------------------------------------
  function call(fn) {
    return function () {
      const args = arguments;
      if (state.phase === 'loading') { pending.push(() => fn.apply(null, args)); } else if (state.phase === 'ready') { fn.apply(null, args); }
    };
  }
  const api = {
    version: 1,
    open: call(() => setOpen(true, true)),
    close: call(() => setOpen(false, false)),
    identify: call((identity) => {
      if (identity !== null && (!identity || typeof identity !== 'object' || !identity.id)) {
        warn('identify() needs {id, name, email, hash}.');
        return;
      }
      state.identity = identity && {
        id: String(identity.id), name: identity.name ? String(identity.name) : '',
        email: identity.email ? String(identity.email) : '', hash: identity.hash ? String(identity.hash) : '',
      };
      if (state.frameReady) { toFrame({ type: 'identify', identity: state.identity }); }
    }),
  };
  // Support a stub defined before this script loaded: window.GPTStore = {q: [['open'], ['identify', {...}]]}.
  const early = window.GPTStore && Array.isArray(window.GPTStore.q) ? window.GPTStore.q : [];
  window.GPTStore = api;
  early.forEach((entry) => { if (entry && typeof api[entry[0]] === 'function') { api[entry[0]].apply(null, entry.slice(1)); } });

  if (!key || !origin) {
    warn('the <script> tag needs data-widget="<widget key>" and a src on the GPT Store site.');
    state.phase = 'off';
    return;
  }

  // --- load the configuration ---------------------------------------------------------------------
  const notAllowed = 'this site (' + location.origin + ') is not one of the widget\'s allowed origins. ' +
    'Add it in GPT Store (Chat → Widgets) to show the chat here.';
  fetch(origin + '/chat/widget/' + encodeURIComponent(key) + '/config.json', { mode: 'cors', credentials: 'omit' })
    .then((response) => {
      if (response.status === 403) { warn(notAllowed); return null; }
      if (!response.ok) { throw new Error('HTTP ' + response.status); }
      return response.json();
    })
    .then((config) => {
      if (!config) { state.phase = 'off'; return; }
      whenBody(() => {
        draw(config);
        state.phase = 'ready';
        pending.splice(0).forEach((fn) => fn());
      });
    })
    .catch((error) => {
      state.phase = 'off';
      // The server refuses a foreign origin without CORS headers, so that 403 also lands here.
      warn('could not load the widget from ' + origin + ' (' + (error && error.message) + '). ' +
        'If the GPT Store site is up, ' + notAllowed);
    });

  function whenBody(fn) {
    if (document.body) { fn(); } else { document.addEventListener('DOMContentLoaded', fn); }
  }

  // --- drawing --------------------------------------------------------------------------------------
  function safeColor(value) { return /^#([0-9a-f]{3}|[0-9a-f]{6})$/i.test(value || '') ? value : '#4f46e5'; }
  /** Black or white, whichever reads better on the widget colour. */
  function textOn(hex) {
    let h = hex.slice(1);
    if (h.length === 3) { h = h.split('').map((c) => c + c).join(''); }
    const lum = [0, 2, 4].map((i) => parseInt(h.substr(i, 2), 16) / 255)
      .map((c) => (c <= 0.03928 ? c / 12.92 : Math.pow((c + 0.055) / 1.055, 2.4)))
      .reduce((sum, c, i) => sum + c * [0.2126, 0.7152, 0.0722][i], 0);
    return 1.05 / (lum + 0.05) >= (lum + 0.05) / 0.05 ? '#ffffff' : '#14141f';
  }

  const CSS = `
    :host { all: initial; }
    .gs-launcher, .gs-panel { position: fixed; z-index: 2147483000; bottom: 20px; right: 20px; }
    .gs-left .gs-launcher, .gs-left .gs-panel { right: auto; left: 20px; }
    .gs-launcher { width: 60px; height: 60px; margin: 0; padding: 0; border: 0; border-radius: 50%; cursor: pointer;
      display: flex; align-items: center; justify-content: center; background: var(--gs-color); color: var(--gs-on);
      box-shadow: 0 6px 20px rgba(15, 15, 40, .28); transition: transform .15s ease; -webkit-tap-highlight-color: transparent; }
    .gs-launcher:hover { transform: scale(1.06); }
    .gs-launcher:focus-visible { outline: 3px solid var(--gs-color); outline-offset: 4px; box-shadow: 0 0 0 2px #fff, 0 6px 20px rgba(15, 15, 40, .28); }
    .gs-launcher svg { width: 28px; height: 28px; display: block; }
    .gs-launcher .gs-icon-close, .gs-open .gs-launcher .gs-icon-chat { display: none; }
    .gs-open .gs-launcher .gs-icon-close { display: block; }
    .gs-badge { position: absolute; top: -3px; right: -3px; min-width: 22px; height: 22px; padding: 0 6px; border-radius: 11px;
      background: #d92d20; color: #fff; border: 2px solid #fff; font: 700 12px/18px system-ui, -apple-system, "Segoe UI", Roboto, Arial, sans-serif;
      text-align: center; box-sizing: border-box; }
    .gs-badge[hidden], .gs-panel[hidden] { display: none; }
    .gs-visually-hidden { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; }
    .gs-panel { bottom: 96px; width: 380px; height: 560px; max-width: calc(100vw - 40px); max-height: calc(100vh - 116px);
      border-radius: 16px; overflow: hidden; background: #fff; box-shadow: 0 12px 48px rgba(15, 15, 40, .28);
      transform-origin: bottom right; animation: gs-pop .18s ease-out; }
    .gs-left .gs-panel { transform-origin: bottom left; }
    .gs-panel iframe { display: block; width: 100%; height: 100%; border: 0; background: #fff; color-scheme: normal; }
    @keyframes gs-pop { from { opacity: 0; transform: translateY(12px) scale(.98); } to { opacity: 1; transform: none; } }
    /* Phones: the panel takes the whole screen; the close button inside the panel brings the launcher back. */
    @media (max-width: 480px) {
      .gs-panel, .gs-left .gs-panel { top: 0; right: 0; bottom: 0; left: 0; width: 100%; height: 100%; max-width: none; max-height: none; border-radius: 0; }
      .gs-open .gs-launcher { display: none; }
    }
    @media (prefers-reduced-motion: reduce) { .gs-launcher, .gs-panel { animation: none; transition: none; } }
  `;
  const CHAT_PATH = 'M12 3C6.5 3 2 6.9 2 11.7c0 2.5 1.2 4.7 3.2 6.3-.2 1.5-.9 2.9-2 3.9 2.2 0 4.2-.8 5.6-2 1 .3 2.1.4 ' +
    '3.2.4 5.5 0 10-3.9 10-8.6S17.5 3 12 3zm-4.5 10a1.3 1.3 0 1 1 0-2.6 1.3 1.3 0 0 1 0 2.6zm4.5 0a1.3 1.3 0 1 1 ' +
    '0-2.6 1.3 1.3 0 0 1 0 2.6zm4.5 0a1.3 1.3 0 1 1 0-2.6 1.3 1.3 0 0 1 0 2.6z';
  /** An icon built node by node (no innerHTML: host pages may enforce Trusted Types). */
  function icon(className, pathAttrs) {
    const NS = 'http://www.w3.org/2000/svg';
    const svg = document.createElementNS(NS, 'svg');
    svg.setAttribute('class', className);
    svg.setAttribute('viewBox', '0 0 24 24');
    svg.setAttribute('aria-hidden', 'true');
    svg.setAttribute('focusable', 'false');
    const path = document.createElementNS(NS, 'path');
    Object.keys(pathAttrs).forEach((name) => path.setAttribute(name, pathAttrs[name]));
    svg.appendChild(path);
    return svg;
  }

  function draw(config) {
    const title = String(config.title || 'Chat');
    const color = safeColor(config.color);
    // Always load the panel from the origin this script came from (the config's absolute URL may
    // name another scheme behind a proxy, and postMessage checks must match one exact origin).
    const frameUrl = origin + new URL(config.frame, origin).pathname;
    const id = 'gptstore-chat-' + key.replace(/[^a-zA-Z0-9_-]/g, '');

    const host = document.createElement('div');
    host.id = id;
    host.setAttribute('style', 'all: initial !important; display: block !important; position: static !important;');
    const root = host.attachShadow ? host.attachShadow({ mode: 'open' }) : host;
    const style = document.createElement('style');
    style.textContent = CSS;

    const wrap = document.createElement('div');
    wrap.className = config.position === 'left' ? 'gs-wrap gs-left' : 'gs-wrap';
    wrap.style.setProperty('--gs-color', color);
    wrap.style.setProperty('--gs-on', textOn(color));

    const panel = document.createElement('div');
    panel.className = 'gs-panel';
    panel.id = id + '-panel';
    panel.hidden = true;
    const iframe = document.createElement('iframe');
    iframe.src = frameUrl;
    iframe.title = title;
    iframe.setAttribute('allow', 'clipboard-write');
    // The panel checks our page's origin against the allowed ones: send it even under a strict policy.
    iframe.setAttribute('referrerpolicy', 'origin');
    panel.appendChild(iframe);

    const launcher = document.createElement('button');
    launcher.type = 'button';
    launcher.className = 'gs-launcher';
    launcher.setAttribute('aria-label', 'Open chat: ' + title);
    launcher.setAttribute('aria-expanded', 'false');
    launcher.setAttribute('aria-controls', panel.id);
    launcher.setAttribute('aria-describedby', id + '-unread');
    launcher.appendChild(icon('gs-icon-chat', { fill: 'currentColor', d: CHAT_PATH }));
    launcher.appendChild(icon('gs-icon-close', { fill: 'none', stroke: 'currentColor', 'stroke-width': '2.4',
      'stroke-linecap': 'round', d: 'M6 9l6 6 6-6' }));
    const badge = document.createElement('span');
    badge.className = 'gs-badge';
    badge.setAttribute('aria-hidden', 'true');
    badge.hidden = true;
    launcher.appendChild(badge);
    const unreadText = document.createElement('span');
    unreadText.className = 'gs-visually-hidden';
    unreadText.id = id + '-unread';
    wrap.appendChild(unreadText);

    wrap.appendChild(panel);
    wrap.appendChild(launcher);
    root.appendChild(style);
    root.appendChild(wrap);
    document.body.appendChild(host);
    els = { host: host, wrap: wrap, launcher: launcher, panel: panel, iframe: iframe, badge: badge, unreadText: unreadText };

    launcher.addEventListener('click', () => setOpen(!state.open, true));
    wrap.addEventListener('keydown', (event) => {
      if (event.key === 'Escape' && state.open) { setOpen(false, false); launcher.focus(); }
    });
    window.addEventListener('message', onFrameMessage);
  }

  function setOpen(open, moveFocus) {
    state.open = open;
    els.panel.hidden = !open;
    els.wrap.classList.toggle('gs-open', open);
    els.launcher.setAttribute('aria-expanded', String(open));
    if (open) {
      setUnread(0);
      // The panel itself puts the focus in its message box when it hears "open" with focus: true.
      // Focusing the <iframe> from here as well races in Chromium: the launcher's mousedown and the
      // frame's focus reach the browser over separate channels, and when they arrive swapped the
      // browser keeps the keyboard on this page while both documents believe the panel has it, so
      // typed text goes nowhere (even after a click in the box).
      state.focusOnOpen = moveFocus;
      sendOpen();
    } else {
      const focusInPanel = els.host.shadowRoot ? els.host.shadowRoot.activeElement === els.iframe
        : document.activeElement === els.iframe;
      toFrame({ type: 'close' });
      if (moveFocus || focusInPanel) { els.launcher.focus(); }
    }
  }

  function setUnread(count) {
    state.unread = count;
    const show = count > 0 && !state.open;
    els.badge.hidden = !show;
    els.badge.textContent = count > 9 ? '9+' : String(count);
    els.unreadText.textContent = show ? count + (count === 1 ? ' unread message' : ' unread messages') : '';
  }

  // --- the visitor token, kept in this (first-party) site's storage for the panel ------------------
  function visitorKey() { return 'gptstore:' + key + ':visitor'; }
  function readVisitor() {
    try { return window.localStorage.getItem(visitorKey()) || ''; } catch (e) { return ''; }
  }
  function writeVisitor(token) {
    try {
      if (token) { window.localStorage.setItem(visitorKey(), token); } else { window.localStorage.removeItem(visitorKey()); }
    } catch (e) { /* storage blocked on this site too: the conversation lasts as long as the page */ }
  }

  // --- talking with the panel -------------------------------------------------------------------------
  /** true when sent; otherwise it goes on "ready". */
  function toFrame(message) {
    if (!state.frameReady || !els.iframe.contentWindow) { return false; }
    els.iframe.contentWindow.postMessage(Object.assign({ gptstore: true }, message), origin);
    return true;
  }

  /** "open", asking for the focus once if the customer opened the panel (not if it opened itself). */
  function sendOpen() {
    if (toFrame({ type: 'open', focus: state.focusOnOpen })) { state.focusOnOpen = false; }
  }

  function onFrameMessage(event) {
    if (event.origin !== origin || !els || event.source !== els.iframe.contentWindow) { return; }
    const data = event.data;
    if (!data || data.gptstore !== true || typeof data.type !== 'string') { return; }
    if (data.type === 'ready') {
      // (Re)loaded panel: hand it the visitor token kept on this site, then who the customer is,
      // then whether it is showing.
      state.frameReady = true;
      toFrame({ type: 'visitor', token: readVisitor() });
      if (state.identity) { toFrame({ type: 'identify', identity: state.identity }); }
      if (state.open) { sendOpen(); } else { toFrame({ type: 'close' }); }
    } else if (data.type === 'close') {
      if (state.open) { setOpen(false, true); }
    } else if (data.type === 'open') {
      if (!state.open) { setOpen(true, false); }  // e.g. an agent joined: show it, leave the focus alone
    } else if (data.type === 'remember') {
      writeVisitor(typeof data.token === 'string' ? data.token.slice(0, 64) : '');
    } else if (data.type === 'unread') {
      const count = Number(data.count);
      if (count >= 0 && count < 1e6) { setUnread(state.open ? 0 : Math.floor(count)); }
    }
  }
}());
