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

// The main menu: on narrow screens it folds behind the Menu button (CSS decides when; this only says whether
// it is open). Menus on the bar (<details>) close on Escape and on a click elsewhere, as menus do.
(() => {
  const topbar = document.getElementById("topbar");
  const toggle = topbar && topbar.querySelector(".nav-toggle");
  if (toggle) {
    topbar.classList.add("collapsible");
    toggle.hidden = false;
    toggle.addEventListener("click", () => {
      const open = toggle.getAttribute("aria-expanded") !== "true";
      toggle.setAttribute("aria-expanded", String(open));
      topbar.classList.toggle("open", open);
    });
  }
  const closeMenus = (except) => {
    document.querySelectorAll(".mainnav details[open]").forEach((menu) => {
      if (menu !== except) menu.open = false;
    });
  };
  document.addEventListener("click", (event) => {
    const inside = event.target instanceof Element ? event.target.closest(".mainnav details") : null;
    closeMenus(inside);
  });
  document.addEventListener("keydown", (event) => {
    if (event.key !== "Escape") return;
    const menu = document.querySelector(".mainnav details[open]");
    if (menu) {
      menu.open = false;
      menu.querySelector("summary").focus();
    } else if (toggle && toggle.getAttribute("aria-expanded") === "true" && topbar.contains(document.activeElement)) {
      toggle.click();
      toggle.focus();
    }
  });
})();
