/* The demo shop's own code (Acme Shoes, served by `manage.py serve_demo_shop` on another origin): open the
   chat from the shop's buttons, and sign the demo customer in. A file rather than an inline <script>, like
   every other script GPT Store ships, so no template needs 'unsafe-inline'. */
(function () {
  'use strict';
  document.querySelectorAll('[data-open-chat]').forEach(function (button) {
    button.addEventListener('click', function () { if (window.GPTStore) { window.GPTStore.open(); } });
  });
  var signIn = document.getElementById('demo-signin');
  if (signIn) {
    signIn.addEventListener('click', function () {
      var identity = JSON.parse(signIn.getAttribute('data-identity'));
      if (window.GPTStore) { window.GPTStore.identify(identity); }
      signIn.textContent = 'Signed in as ' + (identity.name || identity.email || identity.id);
      signIn.disabled = true;
    });
  }
})();
