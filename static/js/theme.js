// Loaded in <head>, before the page is drawn, so a chosen theme never flashes the other one. Everything else
// about the theme toggle is in portal.js. Without this file the browser's own preference applies.
(() => {
  "use strict";
  document.documentElement.classList.add("js");
  try {
    const chosen = window.localStorage.getItem("portal-theme");
    if (chosen === "dark" || chosen === "light") document.documentElement.dataset.theme = chosen;
  } catch (error) {
    // storage refused (private mode, policy): follow the browser's preference
  }
})();
