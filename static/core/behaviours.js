/* Page behaviours the templates ask for with data- attributes, so that no page needs an inline handler,
   an inline <script> or htmx's hx-on (which compiles code with Function()): the site's policy is
   `script-src 'self'`. Every listener is delegated from the document, so content htmx swaps in later
   (partials, history restores) behaves the same without being wired again.

   data-confirm="Question?"        on a <form>: ask before submitting; Cancel keeps the page as it is.
   data-autosubmit                 on a field: submit its form as soon as the value changes.
   data-reset-on-success           on an htmx <form>: clear it once its request succeeded.
   data-insert-into="field-id"     on a <select>: append the chosen option's value to that field.
   data-select-on-click            on an <input>: select all its text when clicked (for copying).
   data-copy-from="element-id"     on a <button>: copy that field's value (or element's text) to the clipboard.
   data-chip-group                 on a <fieldset> of radio chips: keep .active on the checked chip's label.
*/
(function () {
  'use strict';

  // Capture phase: the question is asked before any other submit listener (htmx's included) acts.
  document.addEventListener('submit', function (event) {
    var form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.hasAttribute('data-confirm')) { return; }
    if (!window.confirm(form.getAttribute('data-confirm'))) {
      event.preventDefault();
      event.stopImmediatePropagation();
    }
  }, true);

  document.addEventListener('change', function (event) {
    var field = event.target;
    if (!(field instanceof Element)) { return; }
    if (field.hasAttribute('data-autosubmit') && field.form) {
      field.form.submit();  // like the plain form post it replaces: no submit event, no confirm
      return;
    }
    if (field instanceof HTMLSelectElement && field.hasAttribute('data-insert-into')) {
      var target = document.getElementById(field.getAttribute('data-insert-into'));
      if (field.value && target) {
        target.value = target.value ? target.value + ' ' + field.value : field.value;
        field.selectedIndex = 0;
        target.focus();
      }
      return;
    }
    var group = field.closest('[data-chip-group]');
    if (group && field instanceof HTMLInputElement && field.type === 'radio') {
      group.querySelectorAll('label').forEach(function (chip) {
        var radio = chip.querySelector('input[type=radio]');
        chip.classList.toggle('active', Boolean(radio && radio.checked));
      });
    }
  });

  document.addEventListener('click', function (event) {
    var element = event.target instanceof Element ? event.target : null;
    if (!element) { return; }
    if (element instanceof HTMLInputElement && element.hasAttribute('data-select-on-click')) {
      element.select();
      return;
    }
    var button = element.closest('[data-copy-from]');
    if (button) {
      var source = document.getElementById(button.getAttribute('data-copy-from'));
      if (!source || !navigator.clipboard) { return; }
      // An input's value, or an element's text (a <pre> snippet); the button says it worked.
      var text = source instanceof HTMLInputElement || source instanceof HTMLTextAreaElement ? source.value
        : source.textContent;
      navigator.clipboard.writeText(text).then(function () {
        var label = button.textContent;
        button.textContent = 'Copied';
        setTimeout(function () { button.textContent = label; }, 1500);
      });
    }
  });

  // htmx fires htmx:afterRequest on the element that made the request; it bubbles to its form.
  document.addEventListener('htmx:afterRequest', function (event) {
    var form = event.target instanceof Element ? event.target.closest('form[data-reset-on-success]') : null;
    if (form && event.detail && event.detail.successful) { form.reset(); }
  });
})();
