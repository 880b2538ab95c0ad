/* GPT Store chat panel, part 2 of 2: the visitor session, the socket protocol (docs/chat-protocol.md)
   and the conversation with the host page (widget.js) over postMessage. The DOM side is frame-ui.js.

   Every message has a per-conversation sequence number; the highest one rendered is sent with
   `resume` after each (re)connect, so nothing is lost or shown twice. Customer messages wait in an
   outbox until acknowledged and are resent with the same client_id after a reconnect. */
(function () {
  'use strict';

  const ui = window.GSChatUI;
  const els = ui.els;
  const app = els.app;

  const KEY = app.dataset.widget;
  const SESSION_URL = app.dataset.sessionUrl;
  const ALLOWED_ORIGINS = ui.parseJson(app.dataset.allowedOrigins, []);
  const STORAGE_KEY = 'gptstore:' + KEY + ':visitor';
  const PING_MS = 25000;
  const STALE_MS = 2 * PING_MS + 10000;   // no frame at all for this long: the socket is dead
  const TOKEN_TTL_MS = 14 * 60 * 1000;    // socket tokens expire after 15 minutes
  const MAX_BACKOFF_MS = 15000;
  const START_WAIT_MS = 1000;             // how long to wait for the host page's identify() first
  const FOCUS_TRIES = 10;                 // checks that the keyboard reached the message box, FOCUS_CHECK_MS apart
  const FOCUS_CHECK_MS = 100;

  const state = {
    identity: null, token: null, tokenAt: 0, socketPath: '/ws/chat/widget/',
    generation: 0,            // bumped by restart(): late answers of an older session are ignored
    socket: null, attempt: 0, refusals: 0, reconnectTimer: null, pingTimer: null, lastFrameAt: 0,
    seqs: new Set(), lastSeq: 0, synced: false, countUnread: false,
    outbox: new Map(),        // client_id -> {text, item, failed}
    status: 'bot', assignee: null, lastAgent: null, csatGiven: false, emailPending: false,
    embedded: window.parent !== window, panelOpen: window.parent === window, unread: 0,
    parentOrigin: null, started: false, startTimer: null,
    sessionFor: -1,           // the generation whose session request is in flight, if any
  };

  // --- the host page ------------------------------------------------------------------------------
  function postParent(message) {
    if (!state.parentOrigin) { return; }  // never post to an origin we could not verify ('*' is not an option)
    window.parent.postMessage(Object.assign({ gptstore: true }, message), state.parentOrigin);
  }

  function setUnread(count) {
    state.unread = count;
    postParent({ type: 'unread', count: count });
  }

  /** Put the keyboard in the message box. The browser can leave it on the host page even after focus()
      (a cross-origin frame's focus and the host's own key or mouse events travel separately and may
      arrive swapped, more often on a loaded machine), so check for a moment and ask again: first for
      this window, then for the box. Only while the panel is open, and for about a second. */
  function focusComposer(triesLeft) {
    if (!state.panelOpen || els.input.disabled) { return; }
    if (document.hasFocus() && document.activeElement === els.input) { return; }
    if (triesLeft < FOCUS_TRIES) { window.focus(); }
    els.input.focus({ preventScroll: true });
    if (triesLeft > 1) { setTimeout(() => focusComposer(triesLeft - 1), FOCUS_CHECK_MS); }
  }

  function onParentMessage(event) {
    if (event.source !== window.parent || ALLOWED_ORIGINS.indexOf(event.origin) === -1) { return; }
    const data = event.data;
    if (!data || data.gptstore !== true || typeof data.type !== 'string') { return; }
    if (!state.parentOrigin) { state.parentOrigin = event.origin; }  // e.g. the host sends no referrer
    if (data.type === 'open') {
      state.panelOpen = true;
      if (state.unread) { setUnread(0); }
      ui.scrollToEnd();
      // Only when the customer opened it: a panel that opens itself (an agent joined) leaves the
      // focus where the customer is on the host page.
      if (data.focus === true) { focusComposer(FOCUS_TRIES); }
    } else if (data.type === 'close') {
      state.panelOpen = false;
    } else if (data.type === 'identify') {
      const identity = ui.cleanIdentity(data.identity);
      if (JSON.stringify(identity) !== JSON.stringify(state.identity)) {
        state.identity = identity;
        if (state.started) { restart(); }
      }
    } else if (data.type === 'visitor') {
      // The host page keeps the anonymous visitor token in its own (first-party) storage, because
      // browsers often block or partition storage inside a third-party iframe.
      if (typeof data.token === 'string' && data.token && !ui.storage.get(STORAGE_KEY)) {
        ui.storage.set(STORAGE_KEY, data.token.slice(0, 64));
      }
      return;  // the host sends identify/open/close right after this
    }
    maybeStart();  // the host has spoken (identity or not): no need to wait any longer
  }

  /** Open a session only for someone who chats (or chatted before): a page view alone creates nothing. */
  function maybeStart() {
    clearTimeout(state.startTimer);
    if (state.panelOpen || state.identity || ui.storage.get(STORAGE_KEY)) { start(); }
  }

  function rememberVisitor(token) {
    postParent({ type: 'remember', token: token || '' });
  }

  // --- session and socket -------------------------------------------------------------------------
  async function openSession() {
    const generation = state.generation;
    if (state.sessionFor === generation) { return; }
    state.sessionFor = generation;
    let ready = false;
    try {
      ready = await requestSession(generation);
    } finally {
      if (state.sessionFor === generation) { state.sessionFor = -1; }
    }
    if (ready && generation === state.generation) { connect(); }
  }

  /** POST the session; true when a socket token is ready. Failures schedule their own retry. */
  async function requestSession(generation) {
    const stored = ui.storage.get(STORAGE_KEY);
    let response;
    try {
      response = await fetch(SESSION_URL, {
        method: 'POST', credentials: 'omit', cache: 'no-store', headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ visitor_token: stored || '', identity: state.identity }),
      });
    } catch (error) {
      if (generation === state.generation) { scheduleReconnect(); }
      return false;
    }
    if (generation !== state.generation) { return false; }
    const data = await response.json().catch(() => ({}));
    if (generation !== state.generation) { return false; }
    if (response.status === 403) {
      ui.showError(data.error || 'This chat is not available.');
      if (state.identity && data.code === 'identity_refused') {
        // The host page's identity hash is wrong: chat anonymously rather than not at all.
        console.warn('GPT Store chat: the identity was refused (check the HMAC on your server).');
        state.identity = null;
        return requestSession(generation);
      } else {
        ui.setComposerEnabled(false);  // e.g. only signed-in customers; identify() starts over
      }
      return false;
    }
    if (response.status === 429) {
      const wait = Number(response.headers.get('Retry-After')) || 10;
      ui.showError(data.error || 'Too many chat sessions, trying again soon.', wait * 1000);
      state.reconnectTimer = setTimeout(connect, wait * 1000);
      return false;
    }
    if (!response.ok || !data.token) { scheduleReconnect(); return false; }
    state.token = data.token;
    state.tokenAt = Date.now();
    state.socketPath = data.socket || state.socketPath;
    if (state.identity) {
      // A signed-in customer's visitor token must not outlive their sign-in on this browser: never
      // keep it (the identity is the credential), and forget the anonymous token if it was adopted.
      if (stored && stored === data.visitor_token) { ui.storage.remove(STORAGE_KEY); rememberVisitor(''); }
    } else if (data.visitor_token) {
      ui.storage.set(STORAGE_KEY, data.visitor_token);
      rememberVisitor(data.visitor_token);
    }
    ui.setComposerEnabled(true);
    return true;
  }

  function connect() {
    clearTimeout(state.reconnectTimer);
    if (state.socket || state.sessionFor === state.generation) { return; }
    if (!state.token || Date.now() - state.tokenAt > TOKEN_TTL_MS) { openSession(); return; }
    const scheme = location.protocol === 'https:' ? 'wss://' : 'ws://';
    let socket;
    try {
      socket = new WebSocket(scheme + location.host + state.socketPath + '?token=' + encodeURIComponent(state.token));
    } catch (error) {
      scheduleReconnect();
      return;
    }
    state.socket = socket;
    socket.onopen = () => {
      if (state.socket !== socket) { return; }
      state.synced = false;
      state.lastFrameAt = Date.now();
      ui.dropDraft();  // the replay brings the stored reply if it was finished meanwhile
      ui.setBusy(true);
      send({ type: 'resume', last_seq: state.lastSeq });
      clearInterval(state.pingTimer);
      state.pingTimer = setInterval(ping, PING_MS);
    };
    socket.onmessage = (event) => {
      if (state.socket !== socket) { return; }
      state.lastFrameAt = Date.now();
      const frame = ui.parseJson(event.data, null);
      if (frame && typeof frame.type === 'string') { handle(frame); }
    };
    socket.onclose = (event) => {
      if (state.socket !== socket) { return; }
      dropSocket();
      // Refused: an expired or foreign token. The server closes with 4403, but a refusal before the
      // handshake completes reaches browsers as 1006, so "closed before hello" counts as one too.
      // Either way, fetch a new session before the next try.
      if (event.code === 4403 || !socket.helloSeen) {
        state.token = null;
        state.refusals += 1;
        if (state.refusals >= 3) { ui.showError('The chat cannot connect right now. We keep trying.'); }
      }
      scheduleReconnect();
    };
  }

  let disconnectedTimer = null;
  function dropSocket() {
    const socket = state.socket;
    state.socket = null;
    state.synced = false;
    clearInterval(state.pingTimer);
    ui.setBusy(false);
    ui.setTyping(null);
    if (socket) {
      socket.onopen = socket.onmessage = socket.onclose = null;
      try { socket.close(1000); } catch (e) { /* already closed */ }
    }
    // "Reconnecting…" only if it takes a moment: a quick reconnect should not flicker.
    clearTimeout(disconnectedTimer);
    disconnectedTimer = setTimeout(() => { if (!state.synced) { ui.setConnected(false); } }, 1500);
  }

  function scheduleReconnect() {
    clearTimeout(state.reconnectTimer);
    // Exponential backoff (0.5 s, 1 s, 2 s … 15 s) with jitter, so many widgets do not retry in step.
    const base = Math.min(MAX_BACKOFF_MS, 500 * Math.pow(2, state.attempt));
    state.attempt += 1;
    state.reconnectTimer = setTimeout(connect, base / 2 + Math.random() * base / 2);
  }

  function ping() {
    if (Date.now() - state.lastFrameAt > STALE_MS) { dropSocket(); scheduleReconnect(); return; }
    send({ type: 'ping' });
  }

  function send(frame) {
    if (!state.socket || state.socket.readyState !== WebSocket.OPEN) { return false; }
    state.socket.send(JSON.stringify(frame));
    return true;
  }

  /** Start over with another identity: another visitor, maybe another conversation. */
  function restart() {
    state.generation += 1;
    clearTimeout(state.reconnectTimer);
    dropSocket();
    state.token = null;
    state.attempt = 0;
    state.seqs.clear();
    state.lastSeq = 0;
    state.countUnread = false;
    state.csatGiven = false;
    state.lastAgent = state.assignee = null;
    ui.clearStored();
    ui.showEmailForm(false);
    ui.showCsat(null);
    ui.showError('');
    connect();
  }

  function start() {
    if (state.started) { return; }
    state.started = true;
    clearTimeout(state.startTimer);
    connect();
  }

  // --- frames from the server ---------------------------------------------------------------------
  function handle(frame) {
    switch (frame.type) {
      case 'hello':
        if (state.socket) { state.socket.helloSeen = true; }
        if (state.refusals >= 3) { ui.showError(''); }
        state.attempt = 0;
        state.refusals = 0;
        break;
      case 'message': onMessage(frame.message); break;
      case 'ack': onAck(frame); break;
      case 'token':
        if (state.status !== 'bot') { break; }  // a last piece that crossed "a person took over"
        ui.setTyping(null);
        ui.appendDraft(String(frame.text || ''));
        break;
      case 'typing': onTyping(frame); break;
      case 'status': applyStatus(frame.status, frame.assignee, true); break;
      case 'ask_email': ui.showEmailForm(true); break;
      case 'synced': onSynced(frame); break;
      case 'csat_saved': ui.showCsat('thanks'); break;
      case 'email_saved':
        state.emailPending = false;
        ui.showEmailForm(false);
        break;
      case 'error': onError(frame); break;
      default: break;  // pong and anything newer
    }
  }

  function onMessage(message) {
    if (!message || typeof message.seq !== 'number' || state.seqs.has(message.seq)) { return; }
    if (message.author === 'customer') {
      // Ours, stored. If the ack has not come yet, link it to its pending bubble by text.
      const text = String(message.text || '').trim();
      for (const [clientId, entry] of state.outbox) {
        if (!entry.failed && entry.text === text) { ui.removeItem(entry.item); state.outbox.delete(clientId); break; }
      }
    }
    if (message.author === 'bot') { ui.dropDraft(); clearTimeout(draftTimer); }
    if (message.author === 'bot' || message.author === 'agent') { ui.setTyping(null); }
    if (message.author === 'agent' && message.agent) { state.lastAgent = message.agent; }
    if (message.author === 'system' && state.emailPending) {
      state.emailPending = false;  // the server confirms a contact address with a system message
      ui.showEmailForm(false);
    }
    ui.addMessage(message);
    remember(message.seq);
    if ((message.author === 'bot' || message.author === 'agent') && !state.panelOpen && state.countUnread) {
      setUnread(state.unread + 1);
    }
  }

  function remember(seq) {
    state.seqs.add(seq);
    state.lastSeq = Math.max(state.lastSeq, seq);
  }

  function onAck(frame) {
    const entry = state.outbox.get(frame.client_id);
    if (!entry) { return; }
    state.outbox.delete(frame.client_id);
    if (typeof frame.seq !== 'number' || state.seqs.has(frame.seq)) {
      ui.removeItem(entry.item);  // the stored copy is already on screen
    } else {
      ui.settle(entry.item, frame.seq);
      remember(frame.seq);
    }
  }

  function onError(frame) {
    const entry = frame.client_id ? state.outbox.get(frame.client_id) : null;
    if (entry) {
      entry.failed = true;
      const reason = frame.code === 'rate_limited' ? 'too many messages' : frame.code === 'too_long' ? 'too long' : '';
      ui.markFailed(entry.item, reason, () => retry(frame.client_id));
    }
    if (frame.code === 'bad_email') {
      state.emailPending = false;
      ui.setEmailBusy(false);
      els.email.setAttribute('aria-invalid', 'true');
      els.email.focus();
    }
    ui.showError(frame.message || 'Something went wrong.', frame.code === 'rate_limited' ? 15000 : 0);
  }

  let typingTimer = null;
  let draftTimer = null;
  function onTyping(frame) {
    clearTimeout(typingTimer);
    if (!frame.typing) {
      ui.setTyping(null);
      // The bot stops typing just before its reply is stored; if no reply follows (an agent took
      // over meanwhile), the draft must not stay on screen.
      if (frame.who === 'bot' && ui.hasDraft()) { draftTimer = setTimeout(ui.dropDraft, 5000); }
      return;
    }
    if (frame.who === 'bot') { clearTimeout(draftTimer); }
    const who = frame.who === 'agent' ? (frame.name || 'Someone from our team') : 'Assistant';
    ui.setTyping(who + ' is typing…');
    typingTimer = setTimeout(() => ui.setTyping(null), 15000);  // a lost "stopped typing" frame
  }

  const STATUS_TEXT = {
    bot: () => 'Our assistant',
    needs_human: () => 'Waiting for a member of our team…',
    assigned: (name) => (name || 'Someone') + ' from our team',
    resolved: () => 'Conversation resolved',
  };

  function applyStatus(status, assignee, live) {
    if (!STATUS_TEXT[status]) { return; }
    const previous = state.status;
    state.status = status;
    if (assignee) { state.assignee = assignee; }
    if (status !== 'assigned') { state.assignee = null; }
    ui.setStatus(STATUS_TEXT[status](state.assignee || state.lastAgent));
    ui.setAnswerer(status);
    if (status !== 'bot') { ui.dropDraft(); }
    if (status === 'bot' || status === 'assigned') { ui.showEmailForm(false); }
    if (live && status !== 'resolved') { state.csatGiven = false; }
    ui.showCsat(status === 'resolved' ? (state.csatGiven ? 'thanks' : 'ask') : null);
    // Optional nudge: a person joined while the panel is closed; the host page decides what to do.
    if (live && status === 'assigned' && previous !== 'assigned' && !state.panelOpen) { postParent({ type: 'open' }); }
  }

  function onSynced(frame) {
    state.synced = true;
    clearTimeout(disconnectedTimer);
    ui.setConnected(true);
    ui.setBusy(false);
    if (frame.csat !== null && frame.csat !== undefined) { state.csatGiven = true; }
    applyStatus(frame.status, frame.assignee || null, false);
    if (frame.ask_email && !state.emailPending) { ui.showEmailForm(true); }
    state.countUnread = true;  // from now on, replies that arrive while the panel is closed are unread
    // Unacknowledged messages go (again) now, after the replay: the server ignores a known client_id.
    state.outbox.forEach((entry, clientId) => { if (!entry.failed) { transmit(clientId); } });
  }

  // --- the customer's side ------------------------------------------------------------------------
  function transmit(clientId) {
    const entry = state.outbox.get(clientId);
    if (entry && state.synced) { send({ type: 'message', text: entry.text, client_id: clientId }); }
  }

  function retry(clientId) {
    const entry = state.outbox.get(clientId);
    if (!entry) { return; }
    entry.failed = false;
    ui.markPending(entry.item);
    ui.showError('');
    transmit(clientId);
  }

  function submitMessage(text) {
    const clientId = ui.newClientId();
    state.outbox.set(clientId, { text: text, item: ui.addPending(text), failed: false });
    stopTyping();
    transmit(clientId);  // if offline, it goes out after the next reconnect and replay
  }

  // Tell agents the customer is typing: at most one "true" every 2 s, "false" after 3 s of quiet.
  let typingOn = false, typingSentAt = 0, typingIdle = null;
  function noteTyping() {
    if (!els.input.value.trim()) { stopTyping(); return; }
    const now = Date.now();
    if (!typingOn || now - typingSentAt >= 2000) {
      if (send({ type: 'typing', typing: true })) { typingOn = true; typingSentAt = now; }
    }
    clearTimeout(typingIdle);
    typingIdle = setTimeout(stopTyping, 3000);
  }
  function stopTyping() {
    clearTimeout(typingIdle);
    if (typingOn) { typingOn = false; send({ type: 'typing', typing: false }); }
  }

  function sendEmail(email) {
    if (!send({ type: 'email', email: email })) { ui.showError('Not connected. Try again in a moment.'); return false; }
    state.emailPending = true;
    return true;
  }

  function rate(value) {
    if (!send({ type: 'csat', value: value })) { ui.showError('Not connected. Try again in a moment.'); return; }
    state.csatGiven = true;
    ui.showCsat('thanks');
  }

  ui.bind({
    message: submitMessage, typing: noteTyping, stopTyping: stopTyping, email: sendEmail, csat: rate,
    close: () => { if (state.embedded) { postParent({ type: 'close' }); } },
  });

  // Back online or back to the tab: do not wait for the backoff timer.
  function reconnectNow() {
    if (state.started && !state.socket) { state.attempt = 0; connect(); }
  }
  window.addEventListener('online', reconnectNow);
  document.addEventListener('visibilitychange', () => { if (!document.hidden) { reconnectNow(); } });

  // --- boot ---------------------------------------------------------------------------------------
  ui.setColor(app.dataset.color);
  ui.updateComposer();
  window.addEventListener('message', onParentMessage);
  state.parentOrigin = state.embedded ? ui.parentOrigin(ALLOWED_ORIGINS) : null;
  postParent({ type: 'ready' });
  // Give the host page a moment to pass identify() along, so a signed-in customer does not first
  // get an anonymous session; alone in a tab (no parent), start at once.
  if (state.embedded) { state.startTimer = setTimeout(maybeStart, START_WAIT_MS); } else { start(); }
}());
