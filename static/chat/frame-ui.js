/* GPT Store chat panel, part 1 of 2: the page (bubbles, status line, typing, forms, counter), the
   wiring of its controls and a few small helpers (storage, ids, origins).
   frame.js (part 2) holds the session, the socket and the talk with the host page; it drives this
   module through window.GSChatUI.

   Rule: no innerHTML anywhere. Message text always goes in with textContent, so a message that looks
   like HTML is shown literally. Sender labels come from a data-label attribute drawn by CSS (::before),
   which keeps each bubble's textContent equal to the message text. */
(function () {
  'use strict';

  const LIMIT = 2000;          // characters per message (the server counts code points)
  const COUNTER_FROM = 1800;   // show the counter when getting close
  const NEAR_BOTTOM_PX = 80;   // follow new messages only if the reader is already at the end
  const DEFAULT_COLOR = '#4f46e5';

  const byId = (id) => document.getElementById(id);
  const els = {
    app: byId('gs-app'), transcript: byId('gs-transcript'), input: byId('gs-input'), send: byId('gs-send'),
    composer: byId('gs-composer'), status: byId('gs-status'), conn: byId('gs-conn'), close: byId('gs-close'),
    typing: byId('gs-typing'), typingText: byId('gs-typing-text'), emailForm: byId('gs-email-form'),
    email: byId('gs-email'), csat: byId('gs-csat'), csatUp: byId('gs-csat-up'), csatDown: byId('gs-csat-down'),
    csatThanks: byId('gs-csat-thanks'), error: byId('gs-error'), counter: byId('gs-counter'),
  };

  // --- colour ------------------------------------------------------------------------------------
  function rgb(hex) {
    let h = hex.slice(1);
    if (h.length === 3) { h = h.split('').map((c) => c + c).join(''); }
    return [0, 2, 4].map((i) => parseInt(h.substr(i, 2), 16));
  }
  function luminance(hex) {
    const [r, g, b] = rgb(hex).map((c) => {
      c /= 255;
      return c <= 0.03928 ? c / 12.92 : Math.pow((c + 0.055) / 1.055, 2.4);
    });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  }
  /** The widget colour as CSS variables, with a readable text colour on it and an "ink" variant that
      stays readable on white (a pale brand colour would fail contrast as text or focus ring). */
  function setColor(value) {
    const color = /^#([0-9a-f]{3}|[0-9a-f]{6})$/i.test(value || '') ? value : DEFAULT_COLOR;
    const lum = luminance(color);
    const onWhite = 1.05 / (lum + 0.05);
    const style = document.documentElement.style;
    style.setProperty('--gs-color', color);
    style.setProperty('--gs-on-color', onWhite >= (lum + 0.05) / 0.05 ? '#ffffff' : '#14141f');
    style.setProperty('--gs-ink', onWhite >= 4.5 ? color : '#1d1d2b');
  }

  // --- transcript --------------------------------------------------------------------------------
  const LABELS = { customer: 'You', bot: 'Assistant', agent: 'Our team', system: 'Notice' };

  function nearBottom() {
    const t = els.transcript;
    return t.scrollHeight - t.scrollTop - t.clientHeight < NEAR_BOTTOM_PX;
  }
  function scrollToEnd() { els.transcript.scrollTop = els.transcript.scrollHeight; }

  /** Run a change to the transcript and keep the view pinned to the end if it was there. */
  function keepingScroll(change, force) {
    const follow = force || nearBottom();
    const result = change();
    if (follow) { scrollToEnd(); }
    return result;
  }

  /** One row of the transcript: the bubble (.gs-msg) and an optional meta line under it. Rows carry
      data-order for sorting (pending and draft rows sort last); only the bubble carries data-seq. */
  function makeItem(author, text, label) {
    const item = document.createElement('div');
    item.className = 'gs-item gs-item-' + author;
    const bubble = document.createElement('div');
    bubble.className = 'gs-msg gs-' + author;
    bubble.dataset.label = label || LABELS[author] || '';
    bubble.textContent = text;
    item.appendChild(bubble);
    return item;
  }

  function orderOf(item) {
    const order = item.dataset.order;
    return order === undefined ? Infinity : Number(order);
  }

  /** Insert a stored row before the first row that sorts after it (sequence order). */
  function insertInOrder(item, seq) {
    item.dataset.order = String(seq);
    const rows = els.transcript.children;
    for (let i = 0; i < rows.length; i += 1) {
      if (orderOf(rows[i]) > seq) { els.transcript.insertBefore(item, rows[i]); return; }
    }
    els.transcript.appendChild(item);
  }

  function stamp(bubble, seq, createdAt) {
    bubble.dataset.seq = String(seq);
    const when = createdAt ? new Date(createdAt) : null;
    if (when && !isNaN(when.getTime())) {
      bubble.title = when.toLocaleString([], { hour: '2-digit', minute: '2-digit', day: 'numeric', month: 'short' });
    }
  }

  /** A stored message {seq, author, text, created_at, agent}. */
  function addMessage(message) {
    const author = LABELS[message.author] ? message.author : 'system';
    const label = author === 'agent' ? (message.agent || LABELS.agent) : LABELS[author];
    const item = makeItem(author, String(message.text == null ? '' : message.text), label);
    stamp(item.firstChild, message.seq, message.created_at);
    if (author === 'bot' && Array.isArray(message.sources) && message.sources.length) {
      window.GPTStoreQuotes.emphasiseHeadings(item.firstChild, message.sources);
      item.appendChild(sourcesLine(message.sources));
    }
    if (author === 'bot' && Array.isArray(message.related) && message.related.length) {
      item.appendChild(relatedLine(message.related));
    }
    keepingScroll(() => insertInOrder(item, message.seq));
    return item;
  }

  /** "From: Shipping › How much does shipping cost?" under a bot reply, a link where the source has one
      (http(s) only: a source's address is data, never script). */
  function sourcesLine(sources) {
    const line = document.createElement('div');
    line.className = 'gs-sources';
    line.appendChild(document.createTextNode('From: '));
    sources.forEach(function (source, index) {
      if (index) { line.appendChild(document.createTextNode('; ')); }
      const title = String(source.title || 'our help centre');
      const url = String(source.url || '');
      let node;
      if (/^https?:\/\//i.test(url)) {
        node = document.createElement('a');
        node.href = url;
        node.target = '_blank';
        node.rel = 'noopener noreferrer';
      } else {
        node = document.createElement('span');
      }
      node.className = 'gs-source';
      node.textContent = title;
      line.appendChild(node);
    });
    return line;
  }

  /** "Related:" under an answer: the next closest entries of the help centre as questions the customer
      asks with one tap (sent as their message, like one they typed). */
  function relatedLine(related) {
    const line = document.createElement('div');
    line.className = 'gs-related';
    line.appendChild(document.createTextNode('Related: '));
    related.forEach(function (entry) {
      const question = String((entry && entry.question) || '').slice(0, LIMIT);
      if (!question) { return; }
      const button = document.createElement('button');
      button.type = 'button';
      button.className = 'gs-related-question';
      button.textContent = question;
      button.addEventListener('click', function () {
        if (boundHandlers && !els.input.disabled && botAnswers()) { boundHandlers.message(question); }
      });
      line.appendChild(button);
    });
    return line;
  }

  /** The customer's own message before the server has stored it. */
  function addPending(text) {
    const item = makeItem('customer', text);
    item.firstChild.classList.add('gs-pending');
    setMeta(item, 'Sending…');
    keepingScroll(() => els.transcript.appendChild(item), true);
    return item;
  }

  function setMeta(item, text, retry) {
    let meta = item.querySelector('.gs-meta');
    if (!text) { if (meta) { meta.remove(); } return; }
    if (!meta) {
      meta = document.createElement('div');
      meta.className = 'gs-meta';
      item.appendChild(meta);
    }
    meta.textContent = text;
    if (retry) {
      const button = document.createElement('button');
      button.type = 'button';
      button.className = 'gs-retry';
      button.textContent = 'Retry';
      button.setAttribute('aria-label', 'Retry sending this message');
      button.addEventListener('click', retry);
      meta.appendChild(document.createTextNode(' · '));
      meta.appendChild(button);
    }
  }

  /** The server acknowledged the pending message as number `seq`: it becomes a stored bubble. */
  function settle(item, seq) {
    const bubble = item.firstChild;
    bubble.classList.remove('gs-pending', 'gs-failed');
    stamp(bubble, seq, new Date().toISOString());
    setMeta(item, '');
    keepingScroll(() => insertInOrder(item, seq));
  }

  function markFailed(item, reason, retry) {
    item.firstChild.classList.remove('gs-pending');
    item.firstChild.classList.add('gs-failed');
    setMeta(item, 'Not sent' + (reason ? ': ' + reason : ''), retry);
  }

  function markPending(item) {
    item.firstChild.classList.remove('gs-failed');
    item.firstChild.classList.add('gs-pending');
    setMeta(item, 'Sending…');
  }

  function removeItem(item) { if (item && item.parentNode) { item.parentNode.removeChild(item); } }

  /** Start over for another visitor: keep the greeting and the customer's unsent messages. */
  function clearStored() {
    Array.from(els.transcript.children).forEach((row) => {
      const order = orderOf(row);
      if (order > 0 && order !== Infinity) { row.remove(); }
    });
    dropDraft();
  }

  // --- the bot's streamed draft ------------------------------------------------------------------
  let draft = null;
  function appendDraft(text) {
    keepingScroll(() => {
      if (!draft) {
        draft = makeItem('bot', '');
        draft.firstChild.classList.add('gs-draft');
        // Streaming pieces would be read out one by one: the stored message is announced instead.
        draft.setAttribute('aria-hidden', 'true');
        els.transcript.appendChild(draft);
      }
      draft.firstChild.textContent += text;
    });
  }
  function dropDraft() { removeItem(draft); draft = null; }
  function hasDraft() { return draft !== null; }

  // --- header, typing, cards, error, composer ----------------------------------------------------
  function setStatus(text) { els.status.textContent = text; }

  /** Who answers now (bot, needs_human, assigned, resolved). Related questions are the bot's offer: while a
      person has the conversation they are hidden (frame.css) and a tap sends nothing. */
  function setAnswerer(status) { els.app.dataset.answerer = status; }
  function botAnswers() { return (els.app.dataset.answerer || 'bot') === 'bot'; }
  function setConnected(connected) { els.conn.hidden = connected; }
  /** While a replay runs, screen readers wait instead of reading the whole history aloud. */
  function setBusy(busy) { els.transcript.setAttribute('aria-busy', busy ? 'true' : 'false'); }

  function setTyping(text) {
    if (!text) { els.typing.hidden = true; return; }
    els.typingText.textContent = text;
    keepingScroll(() => { els.typing.hidden = false; });
  }

  function showEmailForm(show) {
    if (els.emailForm.hidden === !show) { return; }
    keepingScroll(() => { els.emailForm.hidden = !show; });
    setEmailBusy(false);
  }
  function setEmailBusy(busy) {
    els.emailForm.querySelectorAll('input, button').forEach((el) => { el.disabled = busy; });
  }

  /** state: null (hidden), 'ask' (the two buttons) or 'thanks'. */
  function showCsat(state) {
    const focusWasInside = els.csat.contains(document.activeElement);
    keepingScroll(() => {
      els.csat.hidden = !state;
      els.csatUp.parentNode.hidden = state !== 'ask';
      els.csatThanks.hidden = state !== 'thanks';
    });
    if (focusWasInside && state === 'thanks') { els.input.focus(); }
  }

  let errorTimer = null;
  /** Messages go into the role="alert" line (kept in the page so the change is announced). */
  function showError(text, clearAfterMs) {
    clearTimeout(errorTimer);
    els.error.textContent = text || '';
    if (text && clearAfterMs) { errorTimer = setTimeout(() => { els.error.textContent = ''; }, clearAfterMs); }
  }

  function length(text) { return Array.from(text).length; }

  function updateComposer() {
    const input = els.input;
    const count = length(input.value.trim());
    els.counter.hidden = count < COUNTER_FROM;
    els.counter.textContent = count.toLocaleString('en') + ' / ' + LIMIT.toLocaleString('en');
    els.counter.classList.toggle('gs-over', count > LIMIT);
    input.setAttribute('aria-invalid', count > LIMIT ? 'true' : 'false');
    els.send.disabled = count === 0 || count > LIMIT;
    // Grow with the text up to a few lines (CSS caps the height and scrolls beyond).
    input.style.height = 'auto';
    input.style.height = Math.min(input.scrollHeight, 140) + 'px';
  }

  function setComposerEnabled(enabled) {
    els.input.disabled = !enabled;
    if (!enabled) { els.send.disabled = true; } else { updateComposer(); }
  }

  // --- small helpers shared with frame.js ---------------------------------------------------------
  function parseJson(text, fallback) {
    try { return JSON.parse(text); } catch (error) { return fallback; }
  }

  // --- storage: third-party storage may be blocked; then the session lives in memory only ----------
  const memory = {};
  const storage = {
    get(key) {
      try { const value = window.localStorage.getItem(key); if (value !== null) { return value; } } catch (e) { /* blocked */ }
      return memory[key] || null;
    },
    set(key, value) {
      memory[key] = value;
      try { window.localStorage.setItem(key, value); } catch (e) { /* blocked: memory only */ }
    },
    remove(key) {
      delete memory[key];
      try { window.localStorage.removeItem(key); } catch (e) { /* blocked */ }
    },
  };

  function newClientId() {
    if (window.crypto && typeof window.crypto.randomUUID === 'function') { return window.crypto.randomUUID(); }
    // Older browsers: a version 4 UUID from getRandomValues (or, at worst, Math.random).
    const bytes = new Uint8Array(16);
    if (window.crypto && window.crypto.getRandomValues) { window.crypto.getRandomValues(bytes); } else {
      for (let i = 0; i < 16; i += 1) { bytes[i] = Math.floor(Math.random() * 256); }
    }
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
    return hex.slice(0, 8) + '-' + hex.slice(8, 12) + '-' + hex.slice(12, 16) + '-' + hex.slice(16, 20) + '-' + hex.slice(20);
  }

  /** The embedding page's origin, only if it is one of the widget's allowed origins. */
  function parentOrigin(allowed) {
    const candidates = [];
    if (location.ancestorOrigins && location.ancestorOrigins.length) { candidates.push(location.ancestorOrigins[0]); }
    try { if (document.referrer) { candidates.push(new URL(document.referrer).origin); } } catch (e) { /* no referrer */ }
    return candidates.find((origin) => allowed.indexOf(origin) !== -1) || null;
  }

  /** The identity passed to identify(), as strings cut to the server's field sizes (null: anonymous). */
  function cleanIdentity(value) {
    if (!value || typeof value !== 'object' || value.id === undefined || value.id === null || value.id === '') { return null; }
    const text = (v, max) => (v === undefined || v === null ? '' : String(v)).slice(0, max);
    return { id: text(value.id, 200), name: text(value.name, 120), email: text(value.email, 254), hash: text(value.hash, 128) };
  }

  // --- controls ------------------------------------------------------------------------------------
  /** Wire the controls to frame.js. handlers: message(text), typing(), stopTyping(), email(address) → bool,
      csat(value), close(). */
  let boundHandlers = null;  // what bind() was given: a related question is sent through it
  function bind(handlers) {
    boundHandlers = handlers;
    function submit() {
      const text = els.input.value.trim();
      if (!text) { return; }
      if (length(text) > LIMIT) {
        showError('Messages are limited to ' + LIMIT.toLocaleString('en') + ' characters.');
        return;
      }
      handlers.message(text);
      els.input.value = '';
      updateComposer();
      showError('');
    }
    els.composer.addEventListener('submit', (event) => { event.preventDefault(); submit(); });
    els.input.addEventListener('keydown', (event) => {
      // Enter sends, Shift+Enter is a new line; never while an input method is composing a character.
      if (event.key === 'Enter' && !event.shiftKey && !event.isComposing && event.keyCode !== 229) {
        event.preventDefault();
        submit();
      }
    });
    els.input.addEventListener('input', () => { updateComposer(); handlers.typing(); });
    els.input.addEventListener('blur', () => handlers.stopTyping());

    els.emailForm.addEventListener('submit', (event) => {
      event.preventDefault();
      const email = els.email.value.trim();
      if (!email || !els.email.checkValidity()) {
        els.email.setAttribute('aria-invalid', 'true');
        showError('Please enter a valid email address.');
        els.email.focus();
        return;
      }
      if (handlers.email(email)) {
        els.email.removeAttribute('aria-invalid');
        showError('');
        setEmailBusy(true);
      }
    });
    els.csatUp.addEventListener('click', () => handlers.csat(1));
    els.csatDown.addEventListener('click', () => handlers.csat(-1));
    els.close.addEventListener('click', () => handlers.close());
    document.addEventListener('keydown', (event) => {
      if (event.key === 'Escape' && !event.isComposing) { event.preventDefault(); handlers.close(); }
    });
  }

  window.GSChatUI = {
    LIMIT, els, setColor, addMessage, addPending, settle, markFailed, markPending, removeItem, clearStored,
    appendDraft, dropDraft, hasDraft, setStatus, setAnswerer, setConnected, setBusy, setTyping, showEmailForm, setEmailBusy,
    showCsat, showError, updateComposer, setComposerEnabled, length, scrollToEnd, parseJson, storage, newClientId,
    parentOrigin, cleanIdentity, bind,
  };
}());
