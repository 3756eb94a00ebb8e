// Small progressive enhancements. Everything works without this file.
document.addEventListener("htmx:responseError", (event) => {
  const target = event.detail.target;
  if (target && event.detail.xhr && event.detail.xhr.status >= 500) {
    target.insertAdjacentHTML("afterbegin", '<p class="error" role="alert">The server could not complete this request. Please try again.</p>');
  }
});
