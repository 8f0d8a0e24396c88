"""Web Push in the player demo, in Chromium. Offline, Chromium cannot reach a push
service, so the browser's PushManager is stood in for in the page (it hands out a
subscription as a push service would); everything else is real: the permission, the
service worker the page registers, the subscription the API stores, and the worker's
handlers, tested by dispatching `push`, `notificationclick` and
`pushsubscriptionchange` events to it."""

from __future__ import annotations

import json
import uuid
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from gameportal.notifications.vapid import b64url
from tests.browser.conftest import VAPID, LiveServer, NewContext, Screenshot, page_errors
from tests.browser.demo import open_demo, register_in, serve_demo, signed_in
from tests.browser.site import StaticSite

PUSH_SERVICE = "https://fcm.googleapis.com/fcm/send/"

# What the page's PushManager does instead of asking a push service.
STAND_IN = """
(() => {
  const made = JSON.parse(%s);
  let current = null;
  window.subscribeCalls = [];
  PushManager.prototype.subscribe = async function (options) {
    window.subscribeCalls.push({
      userVisibleOnly: options.userVisibleOnly,
      applicationServerKey: options.applicationServerKey,
    });
    current = {
      endpoint: made.endpoint,
      expirationTime: null,
      toJSON: () => made,
      unsubscribe: async () => { current = null; return true; },
    };
    return current;
  };
  PushManager.prototype.getSubscription = async function () { return current; };
})();
"""


def _browser_keys() -> dict[str, str]:
    """The keys a browser makes for a subscription (RFC 8291): a P-256 point and a secret."""
    point = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    )
    return {"p256dh": b64url(point), "auth": b64url(uuid.uuid4().bytes)}


def _subscription() -> dict[str, Any]:
    return {
        "endpoint": PUSH_SERVICE + uuid.uuid4().hex,
        "expirationTime": None,
        "keys": _browser_keys(),
    }


# Events dispatched to the worker's own listeners. An event a script makes cannot extend
# its lifetime (waitUntil throws), so each handler's promises are collected and awaited.
_RUN = """
  const waits = [];
  Object.defineProperty(event, "waitUntil", { value: (promise) => waits.push(promise) });
  self.dispatchEvent(event);
  await Promise.all(waits);
}"""
PUSH = (
    "async message => { const event = new PushEvent('push', { data: JSON.stringify(message) });"
    + _RUN
)
CLICK = (
    "async tag => { const [notification] = await self.registration.getNotifications({ tag });"
    "const event = new NotificationEvent('notificationclick', { notification });" + _RUN
)
# What PushSubscriptionChangeEvent carries: the push service's new subscription.
CHANGE = (
    "async subscription => { const event = new ExtendableEvent('pushsubscriptionchange');"
    "Object.defineProperty(event, 'newSubscription', { value: { toJSON: () => subscription } });"
    "Object.defineProperty(event, 'oldSubscription', { value: null });" + _RUN
)


async def _subscriptions(page: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = await page.evaluate(
        "import('./api.js').then(api => api.call('/me/push-subscriptions')).then(p => p.items)"
    )
    return items


async def test_push_opt_in_and_the_service_workers_handlers(
    live_server: LiveServer,
    second_origin: StaticSite,
    new_context: NewContext,
    screenshot: Screenshot,
) -> None:
    first = _subscription()
    context = await new_context()
    await context.grant_permissions(["notifications"], origin=second_origin.url)
    await context.add_init_script(STAND_IN % json.dumps(json.dumps(first)))
    page = await open_demo(context, serve_demo(second_origin, live_server.url))
    email = await register_in(page)

    async with context.expect_event("serviceworker") as registered:
        await page.click("#push-enable")
    worker = await registered.value
    await page.locator("#push-status", has_text="on").wait_for()
    await page.locator("#message", has_text="Push notifications are on").wait_for()
    assert await page.evaluate("window.subscribeCalls") == [
        {"userVisibleOnly": True, "applicationServerKey": VAPID.public_key}
    ]
    [stored] = await _subscriptions(page)
    assert stored["endpoint"] == first["endpoint"] and stored["current"] is True
    assert worker.url.startswith(f"{second_origin.url}/play/sw.js?api=")
    await screenshot(page, "push-on", full_page=False)

    # A push as gameportal sends it: shown, tagged with its id.
    push = {
        "id": str(uuid.uuid4()),
        "title": "Level up!",
        "body": "You reached level 7",
        "category": "achievements",
    }
    await worker.evaluate(PUSH, push)
    shown = await worker.evaluate(
        """async tag => (await self.registration.getNotifications({ tag }))
                 .map(n => ({ title: n.title, body: n.body, tag: n.tag, data: n.data }))""",
        push["id"],
    )
    assert shown == [
        {
            "title": "Level up!",
            "body": "You reached level 7",
            "tag": push["id"],
            "data": {"id": push["id"], "url": None, "category": "achievements"},
        }
    ]
    await worker.evaluate(PUSH, push)  # delivered twice: still one notification
    count = "async tag => (await self.registration.getNotifications({ tag })).length"
    assert await worker.evaluate(count, push["id"]) == 1

    # A click closes it and tells the open page, which shows the inbox.
    await worker.evaluate(CLICK, push["id"])
    assert await worker.evaluate(count, push["id"]) == 0
    await page.locator("#message", has_text="Opened from a notification: Level up!").wait_for()
    assert await page.evaluate("document.activeElement.id") == "inbox-section"

    # The push service replaced the subscription: the worker, with no access token of its
    # own, refreshes through the cookie and hands the new one to the API.
    second = _subscription()
    await worker.evaluate(CHANGE, second)
    [stored] = await _subscriptions(page)
    assert stored["endpoint"] == second["endpoint"] and stored["current"] is True

    await page.click("#push-disable")
    await page.locator("#push-status", has_text="off").wait_for()
    assert await _subscriptions(page) == []
    await page.reload()  # the cookie the worker rotated is the page's too
    await signed_in(page, email)
    assert [e for e in page_errors(page) if "Failed to load resource" not in e] == []
