// Knowledge base uploads: one request per file so each file gets its own progress bar and status.
// Without JavaScript the form posts all files at once and the page lists their status.
(() => {
  "use strict";

  function uploadOne(form, file, list) {
    const item = document.createElement("li");
    item.className = "upload-item";
    const name = document.createElement("span");
    name.className = "upload-name";
    name.textContent = file.name;
    const progress = document.createElement("progress");
    progress.max = 100;
    progress.value = 0;
    progress.setAttribute("aria-label", `Uploading ${file.name}`);
    item.append(name, " ", progress);
    list.prepend(item);

    const body = new FormData();
    body.append("uploads", file);
    form.querySelectorAll("input[name=restricted_to_roles]:checked").forEach((box) => body.append(box.name, box.value));

    const request = new XMLHttpRequest();
    request.open("POST", form.action);
    request.setRequestHeader("X-CSRFToken", window.portal.csrfToken(form));
    request.setRequestHeader("HX-Request", "true");
    request.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable) progress.value = Math.round((event.loaded / event.total) * 100);
    });
    request.addEventListener("load", () => {
      const holder = document.createElement("ul");
      holder.innerHTML = request.responseText; // server-rendered, escaped by Django templates
      const rendered = holder.querySelector("li");
      if (rendered) {
        item.replaceWith(rendered);
        if (window.htmx) window.htmx.process(rendered);
        // the documents table below lists the new document at once (the server names the event)
        const changed = request.getResponseHeader("HX-Trigger");
        if (changed && window.htmx) window.htmx.trigger(document.body, changed);
      } else {
        item.textContent = `${file.name}: upload failed (${request.status}).`;
        item.classList.add("error");
      }
    });
    request.addEventListener("error", () => {
      item.textContent = `${file.name}: the upload was interrupted.`;
      item.classList.add("error");
    });
    request.send(body);
  }

  document.addEventListener("submit", (event) => {
    const form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.matches("[data-knowledge-upload]")) return;
    const input = form.querySelector("input[type=file]");
    const list = document.getElementById("upload-list");
    if (!input || !list || !input.files || input.files.length === 0 || !window.FormData) return;
    event.preventDefault();
    Array.from(input.files).forEach((file) => uploadOne(form, file, list));
    input.value = "";
  });
})();
