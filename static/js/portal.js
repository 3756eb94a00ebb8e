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

// Dark mode: the browser's preference (prefers-color-scheme) unless the person chose otherwise here; the
// choice is kept in localStorage (theme.js applies it before the page is drawn).
(() => {
  const root = document.documentElement;
  const query = window.matchMedia ? window.matchMedia("(prefers-color-scheme: dark)") : null;
  const isDark = () => (root.dataset.theme ? root.dataset.theme === "dark" : Boolean(query && query.matches));
  const show = () => {
    document.querySelectorAll(".theme-toggle").forEach((button) => {
      button.setAttribute("aria-pressed", String(isDark()));
    });
  };
  document.addEventListener("click", (event) => {
    const button = event.target instanceof Element ? event.target.closest(".theme-toggle") : null;
    if (!button) return;
    const next = isDark() ? "light" : "dark";
    root.dataset.theme = next;
    try {
      window.localStorage.setItem("portal-theme", next);
    } catch (error) {
      // not kept, but applied to this page
    }
    show();
  });
  if (query && query.addEventListener) query.addEventListener("change", show);
  show();
})();

// Copy an answer's text (the rendered text, not the markdown source).
document.addEventListener("click", (event) => {
  const button = event.target instanceof Element ? event.target.closest("[data-copy]") : null;
  if (!button) return;
  const source = document.getElementById(button.dataset.copy);
  const status = button.parentElement && button.parentElement.querySelector(".copy-status");
  if (!source) return;
  const say = (text) => {
    if (status) status.textContent = text;
  };
  const text = source.innerText.trim();
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(text).then(() => say("Copied."), () => say("Copying was refused by the browser."));
    return;
  }
  // http on another host: the old way, through a selection
  const selection = window.getSelection();
  const range = document.createRange();
  range.selectNodeContents(source);
  selection.removeAllRanges();
  selection.addRange(range);
  say(document.execCommand("copy") ? "Copied." : "Press Ctrl+C to copy the selected text.");
});
