// Imported with the app's own modules (softphone.py mounts it beside the phone), so this
// runs while the page boots, before React has rendered anything: it starts loading the
// phone's chunk (softphone.jsx with JsSIP, otherwise fetched only once the phone mounts)
// and, in a browser that is signed in, asks the API for the agent's own phone identity
// with the session token. useSipCredentials.js takes that answer instead of asking again.
// Only the promise is kept (in memory, for this page); nothing is written anywhere.
import env from "$/env.json";

export const SIP_CREDENTIALS_PATH = "/api/v1/call-center/extension";
const TOKEN_KEY = "watheeq_session";

export function credentialsRequest(credentialsUrl, token) {
  const url = new URL(credentialsUrl, window.location.href);
  if (["localhost", "127.0.0.1", "0.0.0.0", "::1"].includes(url.hostname)) url.hostname = window.location.hostname;
  return fetch(url.toString(), { headers: { Authorization: `Bearer ${token}` }, cache: "no-store" })
    .then((r) => (r.ok ? r.json().then((body) => ({ status: r.status, body })) : { status: r.status, body: null }));
}

let early = null;
if (typeof window !== "undefined") {
  import("./softphone.jsx").catch(() => {});
  try {
    const token = window.localStorage.getItem(TOKEN_KEY) || "";
    const url = new URL(SIP_CREDENTIALS_PATH, env.PING).toString();
    if (token) early = { token, url, answer: credentialsRequest(url, token) };
    // A failed request is asked again by the phone itself.
    if (early) early.answer.catch(() => { early = null; });
  } catch (e) {
    early = null;
  }
}

// The early answer for this URL and token, once: later asks go to the API.
export function takeEarlyAnswer(credentialsUrl, token) {
  if (!early || early.token !== token || early.url !== new URL(credentialsUrl, window.location.href).toString()) return null;
  const { answer } = early;
  early = null;
  return answer;
}

export function SoftphonePrefetch() {
  return null;
}
