// Destructive actions ask first. A form or a submit button with data-confirm="message" shows
// confirm(message) before submitting; a submit button with class "danger" and no message of its
// own asks a generic question, so no destructive button goes through unasked.
// Listens in the capture phase on the document, so a declined submit never reaches htmx either.
(function () {
  "use strict";

  function questionFor(form, submitter) {
    if (submitter && submitter.dataset.confirm) return submitter.dataset.confirm;
    if (form.dataset.confirm) return form.dataset.confirm;
    if (submitter && submitter.classList.contains("danger")) {
      const label = (submitter.textContent || submitter.value || "").trim();
      return (label ? label + ": " : "") + "are you sure? This cannot be undone.";
    }
    return null;
  }

  document.addEventListener(
    "submit",
    function (event) {
      const form = event.target;
      if (!(form instanceof HTMLFormElement)) return;
      const question = questionFor(form, event.submitter);
      if (question && !window.confirm(question)) {
        event.preventDefault();
        event.stopImmediatePropagation();
      }
    },
    true
  );

  // htmx requests that an element fires itself on click: no submit event follows.
  const HTMX_REQUEST = "[hx-get], [hx-post], [hx-put], [hx-patch], [hx-delete]";

  // Other elements that carry data-confirm: buttons that do not submit, links, htmx buttons.
  document.addEventListener(
    "click",
    function (event) {
      const target = event.target instanceof Element ? event.target : null;
      const control = target && target.closest("[data-confirm]:not(form)");
      if (!control) return;
      // A plain submit button of a form is asked once, in the submit listener.
      if (control.type === "submit" && control.form && !control.matches(HTMX_REQUEST)) return;
      if (!window.confirm(control.dataset.confirm)) {
        event.preventDefault();
        event.stopImmediatePropagation();
      }
    },
    true
  );
})();
