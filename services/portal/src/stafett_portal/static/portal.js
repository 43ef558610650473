// Small conveniences only: every page works without this file.
// An error summary takes focus when a form comes back with errors, so screen readers
// announce it and keyboard users start at the list of what to fix.
document.addEventListener("DOMContentLoaded", () => {
  const summary = document.querySelector("[data-focus]");
  if (summary instanceof HTMLElement) {
    summary.focus();
  }
});
