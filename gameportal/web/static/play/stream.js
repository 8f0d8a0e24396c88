// The live inbox: the browser's own EventSource on GET /me/notifications/stream.
// EventSource cannot send an Authorization header, so each connection first asks for a
// stream ticket (POST /me/notifications/stream-ticket: single use, valid 30 s) and puts
// it in the URL; never put an access or refresh token in a URL.
//
// A ticket opens one connection only, so EventSource's own reconnection (same URL)
// cannot work: on any error this closes it and connects again with a new ticket, and
// `lastEventId` (the id of the last notification seen) so that the server first sends
// whatever arrived meanwhile: a restart or a network cut loses nothing.
import { API, ApiError, call } from "./api.js";

const FIRST_DELAY_MS = 1000;
const MAX_DELAY_MS = 15000;

/**
 * Opens the stream; `onItem(item)` gets each notification (an InboxItem), `onState(state)`
 * "connecting", "live", "reconnecting" or "closed" (the session ended: log in again).
 * Returns a function that closes it.
 */
export function openInboxStream({ onItem, onState, lastEventId = null }) {
  let source = null;
  let timer = null;
  let delay = FIRST_DELAY_MS;
  let stopped = false;

  async function connect() {
    timer = null;
    onState("connecting");
    let ticket;
    try {
      ({ ticket } = await call("/me/notifications/stream-ticket", { method: "POST" }));
    } catch (error) {
      if (error instanceof ApiError && error.status === 401) return stop("closed");
      return retry(); // the server is unreachable or busy: try again later
    }
    if (stopped) return;
    const url = new URL(`${API}/me/notifications/stream`);
    url.searchParams.set("ticket", ticket);
    if (lastEventId) url.searchParams.set("lastEventId", lastEventId);
    source = new EventSource(url);
    source.addEventListener("open", () => {
      delay = FIRST_DELAY_MS;
      onState("live");
    });
    source.addEventListener("notification", (event) => {
      lastEventId = event.lastEventId;
      onItem(JSON.parse(event.data));
    });
    // The stream ended (the session ended, the server restarted) or could not open.
    source.addEventListener("error", () => {
      source.close();
      retry();
    });
  }

  function retry() {
    if (stopped) return;
    onState("reconnecting");
    timer = setTimeout(connect, delay);
    delay = Math.min(delay * 2, MAX_DELAY_MS);
  }

  function stop(state = "closed") {
    if (stopped) return;
    stopped = true;
    clearTimeout(timer);
    source?.close();
    onState(state);
  }

  connect();
  return () => stop("off");
}
