/* A quoted reply's entry headings in bold: the chat widget, the agent console and the deployment playground (one rule).
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

  window.GPTStoreQuotes = { emphasiseHeadings: emphasiseHeadings };
})();
