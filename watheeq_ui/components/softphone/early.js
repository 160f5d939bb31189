// The phone started while the page boots, before the app's own modules have run. Plain
// JavaScript, no React, and no import of the app's chunks (JsSIP and the small modules of
// the phone only), so it can run as early as the page likes: prefetch.jsx imports it with
// the app's modules, and the page's head (head.py) imports this very chunk at once, before
// the app's bundle, when the browser has loaded it before (its URL is kept as a hint). When
// this module runs in a browser that is signed in it
//   1. takes the agent's phone identity the page's head asked the API for (or asks for it
//      itself) with the session token;
//   2. asks for the tab lock of that identity (tabLock.js: only one tab of the agent holds
//      the phone): at once for the identity this browser's phone had last, else (or if the
//      answer names another) with the answer;
//   3. once this tab holds the lock, starts the JsSIP user agent (agent.js), which registers.
// The phone, when it mounts, adopts the answer, the lock and the user agent (adoptEarlyLock,
// adoptEarlyAgent) instead of asking, locking and starting again.
//
// What was started here is stopped (unregistered) and forgotten as soon as the tab is signed
// out (prefetch.jsx's SoftphonePrefetch: forgetEarly), the browser's token changes, another
// tab takes the phone, the phone finds another identity, or the page goes away. The
// credentials are kept in memory only, for this page, until the phone adopts them; the
// browser's storage keeps only the name of the lock (LOCK_HINT_KEY, no credential), removed
// at sign-out, and the URLs of the page's chunks (prefetch.jsx: no credential).
import env from "$/env.json";
import { startAgent } from "./agent.js";
import { mark } from "./support.js";
import { openTabLock } from "./tabLock.js";

export const SIP_CREDENTIALS_PATH = "/api/v1/call-center/extension";
export const TOKEN_KEY = "watheeq_session";
// This module's chunk: prefetch.jsx keeps it for the page's head to import on the next load.
export const EARLY_URL = import.meta.url;
// What the page's head left for this module (head.py): {token, url, answer}.
const HEAD_KEY = "__watheeqSoftphoneHead";

export function credentialsRequest(credentialsUrl, token) {
  const url = new URL(credentialsUrl, window.location.href);
  if (["localhost", "127.0.0.1", "0.0.0.0", "::1"].includes(url.hostname)) url.hostname = window.location.hostname;
  return fetch(url.toString(), { headers: { Authorization: `Bearer ${token}` }, cache: "no-store" })
    .then((r) => (r.ok ? r.json().then((body) => ({ status: r.status, body })) : { status: r.status, body: null }));
}

// The phone's config from the API's answer (the password included: memory only).
export function sipConfig(body) {
  return {
    wss_url: body.wss_url, sip_uri: body.sip_uri, sip_domain: body.sip_domain,
    authorization_user: body.authorization_user, display_name: body.display_name,
    extension: body.extension, dtmf_transport: "RFC2833",
    password: body.password, ice_servers: body.ice_servers || [],
  };
}
export const canRegister = (sip) => !!(sip && sip.wss_url && sip.password);
export const lockName = (sip) => `watheeq-softphone:${sip.sip_uri}`;

export function browserToken() {
  try {
    return window.localStorage.getItem(TOKEN_KEY) || "";
  } catch (e) {
    return "";
  }
}

// The request the page's head made for this URL and token, taken once (and its trace on
// the page removed), or null.
function headAnswer(url, token) {
  const head = window[HEAD_KEY];
  try { delete window[HEAD_KEY]; } catch (e) { window[HEAD_KEY] = undefined; }
  if (!head || head.token !== token || head.url !== url || !head.answer) return null;
  mark("sip:head");
  return head.answer;
}

// This page's early phone, or null: {token, url, answer, taken, sip, lock (until the phone
// adopts it), agent (until the phone adopts it), unwatch}.
let early = null;

// Stops and forgets what was started here and not adopted (the un-REGISTER goes out now).
export function stopEarly() {
  const e = early;
  early = null;
  if (!e) return;
  if (e.unwatch) e.unwatch();
  if (e.agent) e.agent.stop();
  if (e.lock) e.lock.close();
  e.agent = null;
  e.lock = null;
  e.sip = null;
}

// The lock this browser's phone took last (a name, no credential): asked for while the
// credentials are on their way, since a lock is granted only after a task or two.
const LOCK_HINT_KEY = "watheeq.softphone.lock";

// Signed out: what was started here stops, and the lock's name is forgotten.
export function forgetEarly() {
  stopEarly();
  try { window.localStorage.removeItem(LOCK_HINT_KEY); } catch (err) { /* no storage */ }
}

function startEarly(e) {
  const name = lockName(e.sip);
  if (e.lock && e.lock.name !== name) { e.lock.close(); e.lock = null; }
  const lock = e.lock || openTabLock(name);
  e.lock = lock;
  try { window.localStorage.setItem(LOCK_HINT_KEY, name); } catch (err) { /* no storage */ }
  // The user agent starts the moment this tab holds the lock, also when the phone has
  // adopted the lock meanwhile: the watcher is told before the phone.
  const start = () => {
    if (early !== e || e.agent || lock.role !== "leader") return;
    // Signed out, or signed in as someone else, in another tab meanwhile.
    if (browserToken() !== e.token) { stopEarly(); return; }
    mark("ua:early");
    e.agent = startAgent(e.sip, e.sip);
  };
  e.unwatch = lock.watch((role) => { if (role === "leader") start(); });
  lock.attach({
    role() {},
    followerView() {},
    // Another tab took the phone before this one's phone adopted the lock (after that, the
    // phone's own resign stops this: stopEarly).
    resign: () => { if (e.agent) { e.agent.stop(); e.agent = null; } },
  });
  start();
}

if (typeof window !== "undefined") {
  try {
    const token = browserToken();
    const url = new URL(SIP_CREDENTIALS_PATH, env.PING).toString();
    const head = headAnswer(url, token);
    if (token) {
      const e = { token, url, answer: head || credentialsRequest(url, token), taken: false };
      early = e;
      const hint = window.localStorage.getItem(LOCK_HINT_KEY);
      if (hint) e.lock = openTabLock(hint);
      const dropLock = () => { if (e.lock) e.lock.close(); e.lock = null; };
      e.answer.then(({ status, body }) => {
        if (early !== e) return;
        const sip = status >= 200 && status < 300 && body ? sipConfig(body) : null;
        // No phone (no extension, no PBX, or the token refused): the phone says why itself.
        if (!canRegister(sip)) { dropLock(); return; }
        mark("sip:credentials");
        e.sip = sip;
        startEarly(e);
      }, () => {
        // A failed request is asked again by the phone itself.
        if (early === e) { dropLock(); early = null; }
      });
    }
  } catch (err) {
    stopEarly();
  }
  // Signed out or in as another user in another tab of this browser.
  window.addEventListener("storage", (ev) => {
    if (early && (ev.key === TOKEN_KEY || ev.key === null) && browserToken() !== early.token) stopEarly();
  });
}

const sameUrl = (e, credentialsUrl) => e.url === new URL(credentialsUrl, window.location.href).toString();

// The early answer for this URL and token, once: later asks go to the API.
export function takeEarlyAnswer(credentialsUrl, token) {
  if (!early || early.taken || early.token !== token || !sameUrl(early, credentialsUrl)) return null;
  early.taken = true;
  return early.answer;
}

// The credentials already in hand for this URL and token (the phone's first render), or null.
export function earlyCredentials(credentialsUrl, token) {
  if (!early || !early.sip || early.token !== token || !sameUrl(early, credentialsUrl)) return null;
  return early.sip;
}

// Anything started here for another token than the browser's now is stopped.
export function dropEarlyUnless(token) {
  if (early && early.token !== token) stopEarly();
}

// The lock opened here for `name`, handed over to the phone; null (and whatever was started
// here stopped: the phone then takes its own lock) when there is none or it is another
// identity's.
export function adoptEarlyLock(name) {
  if (!early) return null;
  if (!early.lock || early.lock.name !== name || browserToken() !== early.token) { stopEarly(); return null; }
  const { lock } = early;
  early.lock = null;
  early.handedOver = true;
  return lock;
}

// The user agent started here, handed over to the phone that adopted the lock, when it is
// the same identity with the same password; otherwise it is stopped and null returned.
// Either way nothing more starts here: the phone starts its own from now on.
export function adoptEarlyAgent(config, secret) {
  const e = early;
  if (!e || !e.handedOver) {
    stopEarly();
    return null;
  }
  const { agent } = e;
  e.agent = null;
  stopEarly();
  if (!agent) return null;
  if (browserToken() !== e.token || !agent.matches(config, secret)) {
    agent.stop();
    return null;
  }
  return agent;
}
