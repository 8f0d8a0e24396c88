// The API client a browser page needs, in browser session mode:
// - the access token lives in this module's memory only (never localStorage);
// - the refresh token is an HttpOnly cookie the page cannot read: login and register ask
//   for it with "sessionMode": "cookie", and POST /auth/refresh (no body) reads it;
// - every request carries `X-CSRF: 1` and `credentials: "include"`, which the cookie
//   routes require (an HTML form on another site can send neither).
// Copy this file as it is; only API_BASE below depends on where the page is served.

// Where the API is: the page's <meta name="gameportal-api" content="https://api.example.com/">,
// or, left empty, the server this page came from (gameportal serves it at <base>/play/).
const configured = document.querySelector('meta[name="gameportal-api"]')?.content.trim();
export const API_BASE = new URL(configured || "../", document.baseURI).href; // ends with "/"
export const API = `${API_BASE}api/v1`;

let accessToken = null;
let refreshing = null; // one refresh at a time in this tab (other tabs: the server's grace)

/** A refused call: `problem` is the API's problem+json (title, detail, status, errors). */
export class ApiError extends Error {
  constructor(problem) {
    super(problem.detail || problem.title || `HTTP ${problem.status}`);
    this.problem = problem;
    this.status = problem.status;
  }
}

async function send(path, { method = "GET", body, headers = {} } = {}) {
  const auth = accessToken ? { Authorization: `Bearer ${accessToken}` } : {};
  const json = body === undefined ? {} : { "Content-Type": "application/json" };
  return fetch(API + path, {
    method,
    credentials: "include", // send and accept the refresh cookie
    headers: { "X-CSRF": "1", ...auth, ...json, ...headers },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
}

async function answer(response) {
  if (response.status === 204) return null;
  const data = await response.json().catch(() => ({ status: response.status }));
  if (!response.ok) throw new ApiError({ status: response.status, ...data });
  return data;
}

/** Calls the API as the logged-in player; an expired access token is refreshed once. */
export async function call(path, options = {}) {
  let response = await send(path, options);
  if (response.status === 401 && accessToken !== null && (await refresh())) {
    response = await send(path, options);
  }
  return answer(response);
}

/** A new access token from the cookie; false when there is no live session (log in). */
export function refresh() {
  refreshing ??= send("/auth/refresh", { method: "POST" })
    .then(async (response) => {
      accessToken = response.ok ? (await response.json()).accessToken : null;
      return accessToken !== null;
    })
    .catch(() => false) // the server is unreachable: try again later
    .finally(() => {
      refreshing = null;
    });
  return refreshing;
}

export const loggedIn = () => accessToken !== null;

// A device token (not a credential: it only keeps other people's failed logins from
// locking this browser out) is kept across visits and sent with each login.
const DEVICE_TOKEN = "gameportal.deviceToken";

function started(auth) {
  accessToken = auth.accessToken;
  localStorage.setItem(DEVICE_TOKEN, auth.deviceToken);
  return auth.user;
}

export async function logIn(email, password) {
  const deviceToken = localStorage.getItem(DEVICE_TOKEN) || undefined;
  const body = { email, password, deviceToken, sessionMode: "cookie" };
  return started(await answer(await send("/auth/login", { method: "POST", body })));
}

export async function register({ email, password, name, language }) {
  const body = { email, password, name, preferences: { language }, sessionMode: "cookie" };
  return started(await answer(await send("/auth/register", { method: "POST", body })));
}

/** Ends this session (its cookie too, even if the access token has expired). */
export async function logOut() {
  try {
    await answer(await send("/auth/logout", { method: "POST" }));
  } finally {
    accessToken = null;
  }
}
