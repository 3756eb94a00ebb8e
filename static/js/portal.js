// Small progressive enhancements. Everything works without this file.
document.addEventListener("htmx:responseError", (event) => {
  const target = event.detail.target;
  if (target && event.detail.xhr && event.detail.xhr.status >= 500) {
    target.insertAdjacentHTML("afterbegin", '<p class="error" role="alert">The server could not complete this request. Please try again.</p>');
  }
});

// A form posted with htmx that comes back 400 carries its own errors: show them in place. htmx does not swap
// 4xx responses by default, so forms opt in with data-swap-errors (full-page 400s must not land in a target).
document.addEventListener("htmx:beforeSwap", (event) => {
  const source = event.detail.requestConfig && event.detail.requestConfig.elt;
  if (event.detail.xhr.status === 400 && source && source.closest("[data-swap-errors]")) {
    event.detail.shouldSwap = true;
    event.detail.isError = false;
  }
});
