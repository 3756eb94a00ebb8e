// Memory pages: show only the scope target that fits the chosen scope.
(() => {
  const sync = (form) => {
    const scope = form.querySelector("select[name=scope]");
    if (!scope) return;
    const targets = { role: "scope_role", customer: "scope_customer" };
    for (const [value, name] of Object.entries(targets)) {
      const field = form.querySelector(`[name=${name}]`);
      const wrapper = field && field.closest(".field");
      if (wrapper) wrapper.hidden = scope.value !== value;
    }
  };
  document.querySelectorAll("form.memory-form").forEach((form) => {
    sync(form);
    form.addEventListener("change", (event) => {
      if (event.target.name === "scope") sync(form);
    });
  });
})();
