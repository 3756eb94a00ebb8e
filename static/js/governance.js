// Governance screens: small enhancements only; every page works without this file.
document.addEventListener("change", (event) => {
  // Mark matrix cells whose rule differs from the value loaded with the page, so pending edits stand out.
  const select = event.target;
  if (!(select instanceof HTMLSelectElement) || !select.closest(".policy-form")) return;
  const initial = select.querySelector("option[selected]");
  const cell = select.closest("td");
  if (cell && initial) cell.classList.toggle("changed", select.value !== initial.value);
});
