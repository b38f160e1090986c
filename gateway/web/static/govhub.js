// govhub pages: small progressive enhancement. The pages work without it.
(function () {
  "use strict";
  // A form marked data-once is sent once: its submit button is disabled after the first click (the
  // Idempotency-Key makes a second request harmless anyway).
  document.querySelectorAll("form[data-once]").forEach(function (form) {
    form.addEventListener("submit", function () {
      form.querySelectorAll("button[type=submit]").forEach(function (button) {
        if (button.dataset.busy) { button.textContent = button.dataset.busy; }
        window.setTimeout(function () { button.disabled = true; }, 0);
      });
    });
  });
  // Print buttons.
  document.querySelectorAll("[data-print]").forEach(function (button) {
    button.addEventListener("click", function () { window.print(); });
  });
  // After a failed submission, move focus to the error summary so it is read out first.
  var summary = document.getElementById("error-summary");
  if (summary) { summary.focus(); }
})();
