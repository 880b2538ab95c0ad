/* A quoted reply's entry headings in bold: the widget, the playground, the console and the ask box (one rule).
   Sources are the reply's citations ({title: "Shipping › Where do you ship?", …}). */
(function () {
  'use strict';

  /** A quoted entry's heading ("Where do you ship?", the last part of its source's title, at the start of
      a block) in bold, so a reply of two entries reads as two. Only elements are added around lines the
      bubble already holds: its textContent stays the message text. */
  function emphasiseHeadings(bubble, sources) {
    var headings = new Set(sources.map(function (source) {
      return String(source.title || '').split(' › ').pop().trim();
    }).filter(Boolean));
    var lines = bubble.textContent.split('\n');
    var isHeading = function (line, index) {
      return headings.has(line.trim()) && (index === 0 || lines[index - 1].trim() === '');
    };
    if (!lines.some(isHeading)) { return; }
    bubble.textContent = '';
    lines.forEach(function (line, index) {
      if (index) { bubble.appendChild(document.createTextNode('\n')); }
      if (isHeading(line, index)) {
        var heading = document.createElement('strong');
        heading.className = 'quote-heading';
        heading.textContent = line;
        bubble.appendChild(heading);
      } else if (line) {
        bubble.appendChild(document.createTextNode(line));
      }
    });
  }

  /** Server-rendered replies (the agent console, the "ask the knowledge base" box) carry their sources'
      titles as JSON in data-quote-sources; they get the same emphasis when the page loads and after
      each htmx swap. */
  function emphasiseMarked(root) {
    (root || document).querySelectorAll('[data-quote-sources]').forEach(function (element) {
      var titles;
      try { titles = JSON.parse(element.getAttribute('data-quote-sources')); } catch (error) { titles = []; }
      element.removeAttribute('data-quote-sources');
      if (Array.isArray(titles) && titles.length) {
        emphasiseHeadings(element, titles.map(function (title) { return { title: title }; }));
      }
    });
  }
  emphasiseMarked(document);
  document.addEventListener('htmx:afterSwap', function (event) { emphasiseMarked(event.target); });

  window.GPTStoreQuotes = { emphasiseHeadings: emphasiseHeadings };
})();
