// Small conveniences only: every page works without this file.
// An error summary takes focus when a form comes back with errors, so screen readers
// announce it and keyboard users start at the list of what to fix. Otherwise a message
// saying what just happened (after a form was sent) takes focus: a status region that is
// already on the page when it loads is not read out by every screen reader.
document.addEventListener("DOMContentLoaded", () => {
  const target = document.querySelector("[data-focus]") || document.querySelector("[data-flash]");
  if (target instanceof HTMLElement) {
    target.focus();
  }
});
