// The player demo's page logic: each section below is one API feature, written to be
// copied. Text from the API is put in the page with textContent (never as HTML), except
// news bodies, which the server sanitises (`html`) for exactly this use.
import { ApiError, call, logIn, logOut, refresh, register } from "./api.js";
import { disablePush, enablePush, pushEnabled, pushSupported } from "./push.js";
import { openInboxStream } from "./stream.js";

const $ = (id) => document.getElementById(id);
let player = null; // GET /me
let closeStream = null;

// --- small helpers ----------------------------------------------------------------------

function say(text, { error = false } = {}) {
  $("message").textContent = text;
  $("message").classList.toggle("error", error);
}

/** A refused call as one sentence, with the field errors of a 422. */
function explain(error) {
  if (!(error instanceof ApiError)) return error.message || String(error);
  const fields = (error.problem.errors || []).map((e) => `${e.field}: ${e.message}`);
  return [error.problem.detail || error.problem.title, ...fields].filter(Boolean).join(" · ");
}

function element(tag, { text, className, ...attributes } = {}, children = []) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  if (className) node.className = className;
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  node.append(...children);
  return node;
}

const when = (iso) =>
  new Intl.DateTimeFormat(player?.preferences.language || navigator.language, {
    dateStyle: "medium",
    timeStyle: "short",
  }).format(new Date(iso));

// --- signing in and out -----------------------------------------------------------------

async function showPlayer() {
  player = await call("/me");
  $("who").textContent = `${player.name} (${player.email})`;
  for (const id of ["who", "logout", "signed-in"]) $(id).hidden = false;
  $("signed-out").hidden = true;
  await Promise.all([loadNews(), loadInbox(), loadPreferences(), loadSessions(), showPush()]);
  closeStream?.();
  closeStream = openInboxStream({ onItem: addLive, onState: streamState });
}

function showSignedOut(text) {
  player = null;
  closeStream?.();
  closeStream = null;
  for (const id of ["who", "logout", "signed-in"]) $(id).hidden = true;
  $("signed-out").hidden = false;
  if (text) say(text);
  loadNews();
}

$("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.target.elements;
  try {
    await logIn(form.email.value, form.password.value);
    event.target.reset();
    say("Logged in.");
    await showPlayer();
  } catch (error) {
    say(explain(error), { error: true });
  }
});

$("register-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.target.elements;
  try {
    await register({
      name: form.name.value,
      email: form.email.value,
      password: form.password.value,
      language: form.language.value,
    });
    event.target.reset();
    say("Welcome! Your account is ready; we sent you a mail to confirm your address.");
    await showPlayer();
  } catch (error) {
    say(explain(error), { error: true });
  }
});

$("logout").addEventListener("click", async () => {
  await logOut().catch(() => {});
  showSignedOut("Logged out.");
});

// --- news, in the player's language (or the browser's), with their images ---------------

async function loadNews() {
  const wanted = player?.preferences.language || navigator.language || "en";
  const tried = [...new Set([wanted, wanted.split("-")[0], "en"])];
  let items = [];
  for (const locale of tried) {
    const query = new URLSearchParams({ type: "NEWS", locale, limit: "5" });
    ({ items } = await call(`/content?${query}`).catch(() => ({ items: [] })));
    if (items.length) break;
  }
  const articles = items.map((item) => {
    const body = element("div", { className: "news-body", lang: item.locale });
    // Sanitised by the server (nh3); its media URLs are absolute, so images load here.
    body.innerHTML = item.html || "";
    return element("article", { className: "card", id: `news-${item.slug}` }, [
      element("h3", { text: item.title }),
      element("p", { className: "meta", text: item.publishedAt ? when(item.publishedAt) : "" }),
      body,
    ]);
  });
  $("news").replaceChildren(...(articles.length ? articles : [element("p", { text: "No news yet." })]));
  $("news").setAttribute("aria-busy", "false");
}

// --- the inbox: a first page, then live updates ------------------------------------------

async function loadInbox() {
  const { items } = await call("/me/notifications?limit=20");
  $("inbox").replaceChildren(...items.map(inboxItem));
  await countUnread();
}

function inboxItem(item) {
  const read = element("button", { type: "button", className: "secondary", text: "Mark read" });
  read.hidden = Boolean(item.readAt);
  read.addEventListener("click", async () => {
    await call(`/me/notifications/${item.id}/read`, { method: "POST" });
    li.classList.remove("unread");
    read.hidden = true;
    await countUnread();
  });
  const li = element("li", { id: `notification-${item.id}`, className: item.readAt ? "" : "unread" }, [
    element("strong", { text: item.subject }),
    element("p", { text: item.body || "" }),
    element("p", { className: "meta", text: `${item.category} · ${when(item.createdAt)}` }),
    read,
  ]);
  return li;
}

function addLive(item) {
  if ($(`notification-${item.id}`)) return; // already listed (a reconnect may resend)
  $("inbox").prepend(inboxItem(item));
  countUnread();
}

async function countUnread() {
  const { unread } = await call("/me/notifications/unread-count");
  $("unread").textContent = unread ? `${unread} unread` : "";
}

function streamState(state) {
  $("stream-status").textContent = state;
  if (state === "closed" && player) showSignedOut("Your session has ended. Please log in again.");
}

$("mark-all-read").addEventListener("click", async () => {
  await call("/me/notifications/read-all", { method: "POST" });
  await loadInbox();
});

// --- notification preferences ------------------------------------------------------------

const CHANNELS = ["email", "push", "inApp"];
const CATEGORIES = ["achievements", "marketing"];

async function loadPreferences() {
  const preferences = await call("/me/notification-preferences");
  for (const channel of CHANNELS) {
    for (const category of CATEGORIES) {
      $(`pref-${channel}-${category}`).checked = preferences[channel][category];
    }
  }
}

$("preferences-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const body = Object.fromEntries(
    CHANNELS.map((channel) => [
      channel,
      Object.fromEntries(CATEGORIES.map((c) => [c, $(`pref-${channel}-${c}`).checked])),
    ]),
  );
  try {
    await call("/me/notification-preferences", { method: "PUT", body });
    say("Preferences saved.");
  } catch (error) {
    say(explain(error), { error: true });
  }
});

// --- devices: this player's sessions ------------------------------------------------------

async function loadSessions() {
  const { items } = await call("/me/sessions");
  $("sessions").replaceChildren(
    ...items.map((s) =>
      element("li", { id: `session-${s.id}`, className: s.current ? "current" : "" }, [
        element("strong", { text: s.current ? "This device" : s.deviceType }),
        element("p", { text: s.userAgent || "unknown browser" }),
        element("p", { className: "meta", text: `last used ${when(s.lastUsedAt)} · ${s.ip || ""}` }),
      ]),
    ),
  );
}

$("end-other-sessions").addEventListener("click", async () => {
  const { ended } = await call("/me/sessions", { method: "DELETE" });
  say(`Logged out ${ended} other device${ended === 1 ? "" : "s"}.`);
  await loadSessions();
});

// --- Web Push ------------------------------------------------------------------------------

async function showPush() {
  const on = await pushEnabled();
  $("push-status").textContent = pushSupported() ? (on ? "on" : "off") : "not supported";
  $("push-enable").hidden = on || !pushSupported();
  $("push-disable").hidden = !on;
}

$("push-enable").addEventListener("click", async () => {
  try {
    await enablePush();
    say("Push notifications are on for this device.");
  } catch (error) {
    say(explain(error), { error: true });
  }
  await showPush();
});

$("push-disable").addEventListener("click", async () => {
  await disablePush().catch((error) => say(explain(error), { error: true }));
  await showPush();
});

// The service worker tells the page when one of its notifications is clicked.
navigator.serviceWorker?.addEventListener("message", (event) => {
  if (event.data?.type !== "notification-click") return;
  say(`Opened from a notification: ${event.data.title}`);
  $("inbox-section").focus();
});

// --- start: a reload has no access token, but the refresh cookie may still be good -------

if (await refresh()) {
  await showPlayer().catch((error) => showSignedOut(explain(error)));
} else {
  showSignedOut();
}
