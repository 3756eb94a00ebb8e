// The chat page: post a question and show the answer as it streams in. Without this file the forms
// post normally and the page reloads with the stored answer.
(() => {
  "use strict";

  const STREAM_TYPE = "application/x-ndjson";

  function fragment(html) {
    const template = document.createElement("template");
    template.innerHTML = html.trim();
    return template.content.firstElementChild;
  }

  function place(list, html) {
    const element = fragment(html);
    if (!element) return null;
    const existing = document.getElementById(element.id);
    if (existing) existing.replaceWith(element);
    else list.appendChild(element);
    if (window.htmx) window.htmx.process(element);
    return element;
  }

  function pendingAnswer(list) {
    const item = document.createElement("li");
    item.className = "chat-message chat-assistant streaming";
    item.id = "answer-streaming";
    const who = document.createElement("div");
    who.className = "chat-who";
    who.textContent = "Assistant";
    const text = document.createElement("div");
    text.className = "chat-text streaming-text";
    item.append(who, text);
    list.appendChild(item);
    return item;
  }

  function markStopped(pending) {
    // the server keeps what came until the stop, marked "stopped"; show the same here without a reload
    if (!pending) return;
    pending.classList.remove("streaming");
    const tag = document.createElement("span");
    tag.className = "tag stopped";
    tag.textContent = "stopped";
    pending.querySelector(".chat-who").append(" ", tag);
    const note = document.createElement("p");
    note.className = "muted small stopped-note";
    note.textContent = "Stopped before the answer was complete: what came until then is kept.";
    pending.append(note);
    pending.id = "";
  }

  async function streamAnswer(form, status, signal) {
    const list = document.getElementById("chat-messages");
    const response = await fetch(form.action, {
      method: "POST",
      body: new FormData(form),
      headers: { Accept: STREAM_TYPE, "X-CSRFToken": window.portal.csrfToken(form) },
      credentials: "same-origin",
      signal,
    });
    const type = response.headers.get("Content-Type") || "";
    if (!response.ok || !type.startsWith(STREAM_TYPE) || !response.body) {
      if (response.status >= 400 && response.status < 500) {
        // Form errors or a refusal (nothing was stored): let the server's page explain, as a plain post would.
        form.dataset.stream = "";
        form.submit();
      } else {
        status.textContent = "The server could not answer. Reload the page to see what was stored.";
      }
      return;
    }
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    let pending = null;
    for (;;) {
      let chunk;
      try {
        chunk = await reader.read();
      } catch (error) {
        if (error && error.name === "AbortError") {
          markStopped(pending);
          status.textContent = "Stopped.";
          return;
        }
        throw error;
      }
      const { value, done } = chunk;
      if (done) break;
      buffer += value;
      let newline;
      while ((newline = buffer.indexOf("\n")) >= 0) {
        const line = buffer.slice(0, newline);
        buffer = buffer.slice(newline + 1);
        if (!line.trim()) continue;
        const event = JSON.parse(line);
        if (event.event === "question") {
          place(list, event.html);
          if (event.title) {
            // the first question names the conversation
            const heading = document.querySelector("#conversation-head h1");
            const current = document.querySelector(".conversation-list a[aria-current]");
            if (heading) heading.textContent = event.title;
            if (current) current.textContent = event.title;
          }
          if (form.id === "ask-form") form.reset();
          if (form.classList.contains("edit-form")) {
            form.reset();
            const details = form.closest("details");
            if (details) details.open = false;
          }
          status.textContent = "The assistant is answering…";
        } else if (event.event === "delta") {
          if (!pending) pending = pendingAnswer(list);
          const text = pending.querySelector(".streaming-text");
          if (event.reset) text.textContent = "";
          if (typeof event.html === "string") {
            // the answer so far, rendered and sanitized (nh3) by the server: never the model's raw text as HTML
            text.innerHTML = event.html;
            text.classList.add("markdown");
          } else {
            text.append(document.createTextNode(event.text));
          }
        } else if (event.event === "preview") {
          place(list, event.html);
          status.textContent = "Check what will be sent, then confirm.";
        } else if (event.event === "done") {
          if (pending) pending.remove();
          pending = null;
          const element = place(list, event.html);
          status.textContent = "";
          if (element) element.scrollIntoView({ block: "nearest" });
          // where the answer's time went (the server's timings), for whoever measures the page (bench_chat)
          document.dispatchEvent(new CustomEvent("assistant:answered", { detail: { id: event.id, timings: event.timings } }));
        }
      }
    }
  }

  document.addEventListener("submit", (event) => {
    const form = event.target;
    if (!(form instanceof HTMLFormElement) || form.dataset.stream !== "1") return;
    if (!window.fetch || !window.ReadableStream || !window.TextDecoderStream) return; // plain post
    event.preventDefault();
    const askForm = document.getElementById("ask-form");
    const status = askForm ? askForm.querySelector(".ask-status") : document.createElement("span");
    const buttons = document.querySelectorAll(
      "#ask-form button[type=submit], .confirm-form button, .regenerate-form button, .edit-form button",
    );
    buttons.forEach((button) => { button.disabled = true; });
    // Stop: aborting the request closes the connection; the server then ends the provider call and
    // stores what came so far, marked "stopped".
    const controller = new AbortController();
    const stop = askForm ? askForm.querySelector(".stop-button") : null;
    const onStop = () => controller.abort();
    if (stop) {
      stop.hidden = false;
      stop.addEventListener("click", onStop);
    }
    status.textContent = "Sending…";
    streamAnswer(form, status, controller.signal)
      .catch((error) => {
        status.textContent = error && error.name === "AbortError"
          ? "Stopped before any answer came."
          : "The connection was lost. Reload the page to see what was stored.";
      })
      .finally(() => {
        buttons.forEach((button) => { button.disabled = false; });
        if (stop) {
          stop.hidden = true;
          stop.removeEventListener("click", onStop);
        }
      });
  });

  // Enter sends, Shift+Enter adds a line.
  document.addEventListener("keydown", (event) => {
    const field = event.target;
    if (event.key !== "Enter" || event.shiftKey || !(field instanceof HTMLTextAreaElement)) return;
    if (field.form && field.form.id === "ask-form") {
      event.preventDefault();
      field.form.requestSubmit();
    }
  });
})();
