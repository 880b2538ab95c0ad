/* Deployment playground: streams a chat reply (SSE over fetch) or scores a message's sentiment.
   Text is always inserted with textContent: model output is never interpreted as HTML. */
(function () {
  'use strict';
  var root = document.getElementById('playground');
  if (!root) { return; }

  function csrf() {
    var match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    return match ? decodeURIComponent(match[1]) : '';
  }

  // Snippet tabs
  document.querySelectorAll('[data-tab]').forEach(function (tab) {
    tab.addEventListener('click', function () {
      document.querySelectorAll('[data-tab]').forEach(function (other) {
        var on = other === tab;
        other.classList.toggle('active', on);
        other.setAttribute('aria-selected', on ? 'true' : 'false');
      });
      document.querySelectorAll('[data-panel]').forEach(function (panel) {
        panel.hidden = panel.dataset.panel !== tab.dataset.tab;
      });
      document.getElementById('snippet-copy').setAttribute('data-copy-from', 'snippet-' + tab.dataset.tab);
    });
  });

  if (root.dataset.task === 'sentiment') {
    var sform = document.getElementById('pg-sentiment-form');
    var result = document.getElementById('pg-sentiment-result');
    sform.addEventListener('submit', function (event) {
      event.preventDefault();
      result.textContent = 'Scoring…';
      fetch(root.dataset.sentimentUrl, {
        method: 'POST', credentials: 'same-origin',
        headers: { 'Content-Type': 'application/json', 'X-CSRFToken': csrf() },
        body: JSON.stringify({ text: document.getElementById('pg-text').value })
      }).then(function (r) { return r.json(); }).then(function (data) {
        result.textContent = '';
        if (data.error) { result.textContent = data.error.message; return; }
        var head = document.createElement('p');
        var badge = document.createElement('span');
        badge.className = 'badge ' + (data.label === 'negative' ? 'badge-bad' : data.label === 'positive' ? 'badge-ok' : 'badge-muted');
        badge.id = 'pg-label';
        badge.textContent = data.label;
        head.appendChild(badge);
        head.appendChild(document.createTextNode(' ' + (100 * data.score).toFixed(1) + '%'));
        result.appendChild(head);
        Object.keys(data.scores).forEach(function (label) {
          var row = document.createElement('div');
          row.className = 'row small';
          var name = document.createElement('span'); name.style.width = '80px'; name.textContent = label;
          var bar = document.createElement('div'); bar.className = 'progress'; bar.style.flex = '1';
          var fill = document.createElement('span'); fill.style.width = (100 * data.scores[label]).toFixed(1) + '%';
          bar.appendChild(fill);
          var pct = document.createElement('span'); pct.textContent = (100 * data.scores[label]).toFixed(1) + '%';
          row.appendChild(name); row.appendChild(bar); row.appendChild(pct);
          result.appendChild(row);
        });
      }).catch(function () { result.textContent = 'Could not reach the server.'; });
    });
    return;
  }

  var transcript = document.getElementById('pg-transcript');
  var form = document.getElementById('pg-form');
  var input = document.getElementById('pg-input');
  var send = document.getElementById('pg-send');
  var stop = document.getElementById('pg-stop');
  var stats = document.getElementById('pg-stats');
  var history = [];
  var controller = null;

  // What the knowledge base did for a reply (the finishing chunk's `citations` and `grounding`, docs/api.md):
  // its sources with their confidence, or why it did not answer. The widget shows the sources; an admin
  // trying the bot here also needs the why.
  // The words for each outcome are the server's (store/api/protocol.py), so the console and this page agree.
  var OUTCOMES = JSON.parse(document.getElementById('pg-outcomes').textContent);

  function groundingNote(citations, grounding) {
    if (!grounding || !OUTCOMES[grounding.outcome]) { return null; }
    var note = document.createElement('div');
    note.className = 'pg-grounding small muted';
    var line = OUTCOMES[grounding.outcome];
    if (grounding.outcome === 'did_not_know' && grounding.unstated) {
      line += ' — the question asks for a ' + grounding.unstated + ' and the passages found state none';
    }
    if (typeof grounding.confidence === 'number' && grounding.outcome !== 'small_talk') {
      line += ' (best confidence ' + grounding.confidence.toFixed(2) + ')';
    }
    if (grounding.searched) { line += ' · searched as “' + grounding.searched + '”'; }
    note.appendChild(document.createTextNode(line + '.'));
    (citations || []).forEach(function (citation, index) {
      var row = document.createElement('div');
      row.className = 'pg-source';
      row.appendChild(document.createTextNode(index === 0 ? 'From: ' : 'And: '));
      var title = document.createElement(citation.url ? 'a' : 'span');
      title.textContent = citation.title;
      if (citation.url) { title.href = citation.url; title.target = '_blank'; title.rel = 'noopener noreferrer'; }
      row.appendChild(title);
      row.appendChild(document.createTextNode(' · ' + Number(citation.confidence).toFixed(2)));
      note.appendChild(row);
    });
    // The entries the widget offers under this answer, as buttons there.
    var related = (grounding.related || []).map(function (entry) { return String(entry.question || ''); })
      .filter(Boolean);
    if (related.length) {
      var offered = document.createElement('div');
      offered.className = 'pg-related';
      offered.textContent = 'Related (offered to the customer): ' + related.join(' · ');
      note.appendChild(offered);
    }
    return note;
  }

  function bubble(role, text) {
    var div = document.createElement('div');
    div.className = 'pg-msg pg-' + role;
    div.textContent = text;
    transcript.appendChild(div);
    transcript.scrollTop = transcript.scrollHeight;
    return div;
  }

  document.getElementById('pg-reset').addEventListener('click', function () {
    history = []; transcript.textContent = ''; stats.textContent = ''; input.focus();
  });
  stop.addEventListener('click', function () { if (controller) { controller.abort(); } });

  form.addEventListener('submit', function (event) {
    event.preventDefault();
    var text = input.value.trim();
    if (!text || controller) { return; }
    input.value = '';
    history.push({ role: 'user', content: text });
    bubble('user', text);
    var out = bubble('assistant', '');
    out.setAttribute('aria-busy', 'true');
    controller = new AbortController();
    send.disabled = true; stop.hidden = false;
    var started = performance.now(), first = null, reply = '', usage = null, citations = null, grounding = null;
    fetch(root.dataset.chatUrl, {
      method: 'POST', credentials: 'same-origin', signal: controller.signal,
      headers: { 'Content-Type': 'application/json', 'X-CSRFToken': csrf() },
      body: JSON.stringify({ messages: history })
    }).then(function (response) {
      if (!response.ok) {
        return response.json().then(function (data) { throw new Error(data.error ? data.error.message : response.statusText); });
      }
      var reader = response.body.getReader();
      var decoder = new TextDecoder();
      var buffer = '';
      function pump() {
        return reader.read().then(function (step) {
          if (step.done) { return; }
          buffer += decoder.decode(step.value, { stream: true });
          var events = buffer.split('\n\n');
          buffer = events.pop();
          events.forEach(function (raw) {
            var line = raw.replace(/^data: /, '');
            if (line === '[DONE]') { return; }
            var data = JSON.parse(line);
            if (data.error) { throw new Error(data.error.message); }
            if (data.usage) { usage = data.usage; }
            if (data.citations) { citations = data.citations; }
            if (data.grounding) { grounding = data.grounding; }
            var delta = data.choices && data.choices[0] && data.choices[0].delta;
            if (delta && delta.content) {
              if (first === null) { first = performance.now(); }
              reply += delta.content;
              out.textContent = reply;
              transcript.scrollTop = transcript.scrollHeight;
            }
          });
          return pump();
        });
      }
      return pump();
    }).then(function () {
      history.push({ role: 'assistant', content: reply });
      if (citations && citations.length) { window.GPTStoreQuotes.emphasiseHeadings(out, citations); }
      var note = groundingNote(citations, grounding);
      if (note) { out.after(note); transcript.scrollTop = transcript.scrollHeight; }
      var seconds = (performance.now() - started) / 1000;
      if (usage && usage.completion_tokens === 0) {  // quoted, or "I don't know": nothing was generated
        stats.textContent = 'Reply after ' + Math.round((first === null ? performance.now() : first) - started) +
          ' ms · nothing generated';
      } else if (usage) {
        stats.textContent = 'First token after ' + Math.round(first - started) + ' ms · ' + usage.completion_tokens +
          ' tokens in ' + seconds.toFixed(1) + ' s (' + (usage.completion_tokens / Math.max(0.001, (performance.now() - first) / 1000)).toFixed(1) + ' tokens/s)';
      }
    }).catch(function (error) {
      if (error.name === 'AbortError') {
        out.textContent = reply + ' [stopped]';
        history.push({ role: 'assistant', content: reply });
      } else {
        out.textContent = 'Error: ' + error.message;
        out.classList.add('pg-error');
        history.pop();
      }
    }).finally(function () {
      out.removeAttribute('aria-busy');
      controller = null; send.disabled = false; stop.hidden = true; input.focus();
    });
  });
})();
