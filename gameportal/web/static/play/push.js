// Web Push opt-in: a service worker (sw.js, beside this file) receives the pushes; the
// page subscribes with the server's VAPID key and hands the subscription to the API,
// which keeps one per device session (posting again replaces it; logging out ends it).
import { API_BASE, call } from "./api.js";

export const pushSupported = () =>
  "serviceWorker" in navigator && "PushManager" in window && "Notification" in window;

/** The service worker, registered once; it reads the API's address from its own URL. */
export function serviceWorker() {
  const script = new URL("sw.js", import.meta.url);
  script.searchParams.set("api", API_BASE);
  return navigator.serviceWorker.register(script, { scope: "./" });
}

/** Asks for permission (call it from a click), subscribes, and tells the API. */
export async function enablePush() {
  if ((await Notification.requestPermission()) !== "granted") {
    throw new Error("Notifications are blocked for this site in the browser's settings.");
  }
  await serviceWorker();
  const registration = await navigator.serviceWorker.ready;
  const { publicKey } = await call("/push/vapid-public-key");
  const subscription =
    (await registration.pushManager.getSubscription()) ??
    (await registration.pushManager.subscribe({
      userVisibleOnly: true, // every push shows a notification (browsers require it)
      applicationServerKey: publicKey, // base64url, as the API gives it
    }));
  // toJSON(): {endpoint, expirationTime, keys: {p256dh, auth}}, the body the API takes.
  return call("/me/push-subscriptions", { method: "POST", body: subscription.toJSON() });
}

/** Unsubscribes this browser and removes the subscription from the API. */
export async function disablePush() {
  const registration = await navigator.serviceWorker.getRegistration(new URL("./", import.meta.url));
  const subscription = await registration?.pushManager.getSubscription();
  await subscription?.unsubscribe();
  const { items } = await call("/me/push-subscriptions");
  for (const item of items.filter((s) => s.current)) {
    await call(`/me/push-subscriptions/${item.id}`, { method: "DELETE" });
  }
}

/** Whether this browser has a push subscription now. */
export async function pushEnabled() {
  if (!pushSupported()) return false;
  const registration = await navigator.serviceWorker.getRegistration(new URL("./", import.meta.url));
  return Boolean(await registration?.pushManager.getSubscription());
}
