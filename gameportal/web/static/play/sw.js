// The service worker of the player demo: shows pushes as notifications, brings the page
// to the front when one is clicked, and keeps the API's copy of the subscription current.
// A classic script (not a module) so that every browser with Web Push can run it.
/* global clients */

// The API's address, from the URL the page registered this worker with (?api=...).
const API = `${new URL(self.location.href).searchParams.get("api") || new URL("../", self.location.href).href}api/v1`;

self.addEventListener("install", () => self.skipWaiting());
self.addEventListener("activate", (event) => event.waitUntil(self.clients.claim()));

// A push from gameportal: {id, title, body?, url?, category} (event.data.json()).
self.addEventListener("push", (event) => {
  event.waitUntil(showPush(event.data ? event.data.json() : {}));
});

function showPush(message) {
  return self.registration.showNotification(message.title || "gameportal", {
    body: message.body || "",
    // A retried push may arrive twice: the same tag replaces the notification.
    tag: message.id,
    data: { id: message.id, url: message.url || null, category: message.category },
  });
}

// A click: tell an open page (it shows the inbox, or the push's url), or open one.
self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  event.waitUntil(openFor(event.notification));
});

async function openFor(notification) {
  const data = notification.data || {};
  const target = new URL(data.url || "./", self.registration.scope).href;
  const pages = await clients.matchAll({ type: "window", includeUncontrolled: true });
  const page = pages.find((client) => client.url.startsWith(self.registration.scope));
  if (!page) return clients.openWindow(target);
  page.postMessage({ type: "notification-click", id: data.id, title: notification.title, url: data.url });
  // Browsers let a worker focus a window only while handling a real click.
  return page.focus().catch(() => page);
}

// The push service replaced the subscription (keys rotated, or it expired): send the new
// one to the API. The worker has no access token, so it gets one with the refresh cookie
// (browser session mode); logged out, nothing is sent and the next login subscribes again.
self.addEventListener("pushsubscriptionchange", (event) => {
  event.waitUntil(resubscribe(event));
});

async function resubscribe(event) {
  const subscription =
    event.newSubscription ||
    (await self.registration.pushManager.subscribe({
      userVisibleOnly: true,
      applicationServerKey:
        event.oldSubscription?.options?.applicationServerKey || (await vapidKey()),
    }));
  const refreshed = await fetch(`${API}/auth/refresh`, {
    method: "POST",
    credentials: "include",
    headers: { "X-CSRF": "1" },
  });
  if (!refreshed.ok) return;
  const { accessToken } = await refreshed.json();
  await fetch(`${API}/me/push-subscriptions`, {
    method: "POST",
    headers: { Authorization: `Bearer ${accessToken}`, "Content-Type": "application/json" },
    body: JSON.stringify(subscription.toJSON ? subscription.toJSON() : subscription),
  });
}

async function vapidKey() {
  const response = await fetch(`${API}/push/vapid-public-key`);
  return (await response.json()).publicKey;
}
