// The console's one script (an ES module; pages have no inline script, see the CSP).
// Pages work without it: it only adds the CSRF token to htmx requests and confirmation
// prompts to dangerous buttons.

const token = document.querySelector('meta[name="csrf-token"]')?.content ?? "";

// Every htmx request carries the session's CSRF token, as every form does in a field.
document.body.addEventListener("htmx:configRequest", (event) => {
  if (token) event.detail.headers["X-CSRF-Token"] = token;
});

// <form data-confirm="End every session of this player?">: asks before submitting.
document.addEventListener("submit", (event) => {
  const form = event.target;
  if (!(form instanceof HTMLFormElement)) return;
  const question = event.submitter?.dataset.confirm ?? form.dataset.confirm;
  if (question && !window.confirm(question)) event.preventDefault();
});

// htmx: a refused request (403: the session's token, 409: someone else's change) shows
// its page's message instead of silently doing nothing.
document.body.addEventListener("htmx:responseError", (event) => {
  const xhr = event.detail.xhr;
  const message = xhr.getResponseHeader("HX-Error-Message");
  window.alert(message || `The request failed (${xhr.status}). Reload the page and try again.`);
});
