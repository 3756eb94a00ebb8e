// Behaviours every page shares, loaded by base.html. Every page still works without JavaScript.
// - data-confirm="Question?" on a form (asked when it is submitted) or on a button or link (asked when it is
//   clicked): nothing happens unless the question is answered with OK. Listening in the capture phase, a
//   refusal stops the event before any other handler (htmx, the upload script) sees it.
// - portal.csrfToken(form): the CSRF token for requests made from script (the form's hidden field, else the
//   token base.html puts in the body's hx-headers).
(() => {
  "use strict";

  function csrfToken(form) {
    const field = form ? form.querySelector("input[name=csrfmiddlewaretoken]") : null;
    if (field) return field.value;
    try {
      return JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRFToken"] || "";
    } catch {
      return "";
    }
  }

  window.portal = Object.assign(window.portal || {}, { csrfToken });

  function refuse(event, question) {
    if (!question || window.confirm(question)) return;
    event.preventDefault();
    event.stopImmediatePropagation();
  }

  document.addEventListener(
    "click",
    (event) => {
      const control = event.target instanceof Element ? event.target.closest("button[data-confirm], a[data-confirm]") : null;
      if (control) refuse(event, control.dataset.confirm);
    },
    true,
  );
  document.addEventListener(
    "submit",
    (event) => {
      const form = event.target;
      if (form instanceof HTMLFormElement) refuse(event, form.dataset.confirm);
    },
    true,
  );
})();
