// The JsSIP user agent of the tab that holds the phone: registration, reconnection, and
// why the phone is not registered (as a label key and its values, so it follows the language).
// Plain JavaScript, no React: early.js starts it while the page boots (in the tab that holds
// the lock), before the app's own modules have run; useUserAgent adopts that one or starts
// its own, and turns what it reports into state.
import JsSIP from "jssip";
import { labelsFor } from "./labels.js";
import { httpsOf, instanceId, mark } from "./support.js";

const REGISTER_RETRY_MAX_S = 30;
// After a PBX restart every agent must be back within seconds, not JsSIP's default 2–30 s:
// reconnection attempts are at most this far apart while the PBX is away.
export const RECONNECT_MIN_S = 1;
export const RECONNECT_MAX_S = 4;

// The user agent of one identity (config: wss_url, sip_uri, authorization_user, …; secret:
// the password), started now. early.js starts it while the page boots, once the tab holds
// the lock, and useUserAgent adopts it; or the hook starts its own. Until a sink is
// attached, what happens is kept and told to it in order then:
//   status(state, reasonOf): registration state; reasonOf(labels) is its reason, or null;
//   problem(p): why it is not registered ({key, …} or null);
//   registration(payload): registered or failed, for the server;
//   newSession(session, originator, request): a call (one that has already ended is dropped);
//   stopping(): the calls are about to go.
export function startAgent(config, secret) {
  let sink = null;
  const pending = [];
  const emit = (kind, ...args) => {
    if (sink) sink[kind](...args);
    else pending.push([kind, args]);
  };
  const labels = () => (sink && sink.labels ? sink.labels() : labelsFor("en"));
  let retryTimer = null;
  let retries = 0;
  const publish = (state, reasonOf = null) => {
    mark(`reg:${state}`, reasonOf ? reasonOf(labels()) : "");
    emit("status", state, reasonOf);
  };
  const setProblem = (p) => emit("problem", p);
  const report = (payload) => emit("registration", payload);

  let ua = new JsSIP.UA({
    sockets: [new JsSIP.WebSocketInterface(config.wss_url)],
    uri: config.sip_uri,
    authorization_user: config.authorization_user,
    password: secret.password,
    display_name: config.display_name || undefined,
    instance_id: instanceId(),
    register: true,
    register_expires: config.register_expires || 300,
    // Re-INVITE refreshes: peers that ignore UPDATE drop calls after ~75 s otherwise.
    session_timers: config.session_timers !== false,
    session_timers_refresh_method: "INVITE",
    connection_recovery_min_interval: RECONNECT_MIN_S,
    connection_recovery_max_interval: RECONNECT_MAX_S,
    no_answer_timeout: config.no_answer_timeout || 60,
    user_agent: "Watheeq softphone",
  });
  publish("registering");
  setProblem(null);
  // A browser does not tell a page why a WebSocket failed. Plain ws:// (a PBX on this
  // machine) has no certificate, so it is down; a wss:// that never connected from
  // this page may be down or behind a certificate the browser does not trust yet.
  let everConnected = false;
  const unreachable = () => {
    const url = config.wss_url;
    const key = url.startsWith("wss:") && !everConnected ? "pbxDownOrCert" : "pbxDown";
    mark("problem", key);
    setProblem({ key, url, https: httpsOf(url) });
  };
  ua.on("connecting", (e) => { if (e.attempts > 1) publish("disconnected", (L) => L.attempt(e.attempts)); });
  ua.on("connected", () => {
    everConnected = true;
    // JsSIP registers on every (re)connection by itself: a retry still pending from
    // before the drop would only wait out its back-off.
    clearTimeout(retryTimer);
    retries = 0;
    mark("ua:connected");
  });
  ua.on("disconnected", (e) => {
    publish("disconnected", (L) => e.reason || (e.error ? L.connError : L.connClosed));
    unreachable();
  });
  ua.on("registered", () => {
    retries = 0;
    setProblem(null);
    publish("registered");
    report({ state: "registered", at: Date.now() });
  });
  ua.on("unregistered", () => { if (ua && ua.isConnected()) publish("registering", (L) => L.regExpired); });
  ua.on("registrationFailed", (e) => {
    // JsSIP retries by itself only after a 423 (and on reconnection); the rest is ours.
    retries += 1;
    const delay = Math.min(REGISTER_RETRY_MAX_S, 2 ** Math.min(retries, 5)) * (0.75 + Math.random() / 2);
    const code = e.response ? ` (${e.response.status_code})` : "";
    publish("failed", (L) => `${e.cause}${code}; ${L.retryingIn(Math.round(delay))}`);
    const status = e.response && e.response.status_code;
    if (status === 401 || status === 407) {
      mark("problem", "wrongPassword");
      setProblem({ key: "wrongPassword", ext: config.extension });
    } else if (status) {
      setProblem({ key: "refused", ext: config.extension, code: `${status} ${e.response.reason_phrase || ""}`.trim() });
    }
    report({ state: "failed", cause: e.cause, at: Date.now() });
    clearTimeout(retryTimer);
    retryTimer = setTimeout(() => { if (ua && ua.isConnected()) ua.register(); }, delay * 1000);
  });
  ua.on("newRTCSession", (e) => emit("newSession", e.session, e.originator, e.request));
  mark("ua:start");
  ua.start();

  const agent = {
    ua,
    // Who it registers, with what: a phone adopts it only for the same identity.
    wss_url: config.wss_url,
    sip_uri: config.sip_uri,
    matches: (other, otherSecret) => !!ua && other.wss_url === config.wss_url && other.sip_uri === config.sip_uri
      && otherSecret.password === secret.password,
    attach(next) {
      sink = next;
      pending.splice(0).forEach(([kind, args]) => {
        if (kind === "newSession" && args[0].isEnded()) return;
        sink[kind](...args);
      });
    },
    // Unregisters and stops now (JsSIP's stop() sends the un-REGISTER), at most once.
    stop() {
      clearTimeout(retryTimer);
      window.removeEventListener("pagehide", agent.stop);
      if (!ua) return;
      ua.removeAllListeners();
      // The log learns of it here: the page or the tab is going away mid-call.
      if (sink) sink.stopping();
      ua.stop();
      ua = null;
      agent.ua = null;
      pending.length = 0;
      sink = null;
    },
  };
  window.addEventListener("pagehide", agent.stop);
  return agent;
}
