// The agent's desk phone in the browser: one JsSIP user agent, mounted once above the
// router (an app wrap), so page navigation never drops a registration or a call.
//
// Python owns the data (config, client matches, recent calls) and the call log; this
// component owns the SIP side and reports every call event through onCallEvent.
import JsSIP from "jssip";
import { useCallback, useEffect, useRef, useState } from "react";

const INSTANCE_KEY = "watheeq.softphone.instance";
const DIAL_KEYS = ["1", "2", "3", "4", "5", "6", "7", "8", "9", "*", "0", "#"];
const ICE_GRACE_MS = 400; // after the first candidate, stop waiting for more
const ICE_MAX_MS = 1500; // never wait longer than this for gathering
const REGISTER_RETRY_MAX_S = 30;

function instanceId() {
  // One stable +sip.instance per browser, so a reload replaces its binding at the PBX
  // instead of adding a stale one.
  let id = localStorage.getItem(INSTANCE_KEY);
  if (!id) {
    id = crypto.randomUUID();
    localStorage.setItem(INSTANCE_KEY, id);
  }
  return id;
}

// A read-only view for the browser end-to-end tests and for support in devtools: the
// live calls (with their RTCPeerConnection, for getStats) and a short timeline of what
// the phone did. It holds no credentials.
const TIMELINE_MAX = 200;
function probe() {
  if (!window.__watheeqSoftphone) window.__watheeqSoftphone = { timeline: [], calls: () => [] };
  return window.__watheeqSoftphone;
}
function mark(type, detail) {
  const tl = probe().timeline;
  tl.push({ type, detail: detail || null, at: Date.now(), t: performance.now() });
  if (tl.length > TIMELINE_MAX) tl.shift();
}

// Every text the phone shows, in the platform's two languages (the `lang` prop follows
// its language switch). Errors are kept as keys, so they follow a later switch too.
const LABELS = {
  en: {
    phone: "Phone", offline: "Offline", connecting: "Connecting…", ready: "Ready", regFailed: "Registration failed",
    disconnected: "Disconnected, retrying", follower: "Phone open in another tab",
    attempt: (n) => `attempt ${n}`, regExpired: "registration expired", retryingIn: (s) => `retrying in ${s} s`,
    connError: "connection error", connClosed: "connection closed",
    micDenied: "Microphone permission denied: allow it in the browser to call.",
    micMissing: "No microphone found: connect one to call.",
    micBusy: "The microphone is in use by another application.",
    micFailed: "The microphone could not be opened.",
    notRegistered: "The phone is not registered yet.", transferFailed: "The transfer failed.",
    callWaiting: "Call waiting", incomingCall: "Incoming call", enableRingtone: "click anywhere to enable the ringtone",
    unknownCaller: "Unknown caller", answer: "Answer", reject: "Reject",
    otherTabCall: "A call is in progress in the other tab.", takeOver: "Use the phone in this tab",
    calling: "Calling…", ringing: "Ringing…", onHold: "On hold", inCall: "In call",
    mute: "Mute", unmute: "Unmute", hold: "Hold", resume: "Resume", transferTo: "Transfer to…", transfer: "Transfer",
    hangUp: "Hang up", afterCall: (n) => `After the call with ${n}`, callEnded: "Call ended",
    notConnected: (why) => `Not connected: ${why}`, unknownReason: "unknown reason",
    note: "Note", noCase: "No case", save: "Save", skip: "Skip", numberPlaceholder: "Number or extension", call: "Call",
    // Why the phone is not registered, and what to do about it.
    problem: {
      pbxDown: ({ url }) => `PBX not reachable at ${url}. Check that the PBX is running and that this computer can reach it; the phone keeps retrying.`,
      pbxDownOrCert: ({ url, https }) => `PBX not reachable at ${url}, or its certificate not trusted: open ${https} once in this browser, accept the certificate, then reload this page.`,
      wrongPassword: ({ ext }) => `Wrong SIP password for extension ${ext}: ask an administrator to set it again on the Extensions page.`,
      refused: ({ ext, code }) => `The PBX refused extension ${ext} (${code}): ask an administrator to check the extension.`,
      noExtension: () => "No extension assigned: ask an administrator to assign you one on the Extensions page.",
      noPbx: () => "No PBX configured for this firm: an administrator sets it on the Extensions page.",
    },
    status: {
      COMPLETED: "Completed", ANSWERED: "In call", RINGING: "Ringing", MISSED: "Missed", REJECTED: "Rejected",
      BUSY: "Busy", FAILED: "Failed", NO_ANSWER: "No answer",
    },
  },
  ar: {
    phone: "الهاتف", offline: "غير متصل", connecting: "جارٍ الاتصال…", ready: "جاهز", regFailed: "فشل التسجيل",
    disconnected: "انقطع الاتصال، جارٍ إعادة المحاولة", follower: "الهاتف مفتوح في علامة تبويب أخرى",
    attempt: (n) => `المحاولة ${n}`, regExpired: "انتهت صلاحية التسجيل", retryingIn: (s) => `إعادة المحاولة بعد ${s} ث`,
    connError: "خطأ في الاتصال", connClosed: "أُغلق الاتصال",
    micDenied: "رُفض إذن الميكروفون: اسمح به في المتصفح لإجراء المكالمات.",
    micMissing: "لا يوجد ميكروفون: وصّل ميكروفونًا لإجراء المكالمات.",
    micBusy: "الميكروفون مستخدم من تطبيق آخر.",
    micFailed: "تعذّر فتح الميكروفون.",
    notRegistered: "الهاتف غير مسجّل بعد.", transferFailed: "فشل التحويل.",
    callWaiting: "مكالمة في الانتظار", incomingCall: "مكالمة واردة", enableRingtone: "انقر في أي مكان لتفعيل نغمة الرنين",
    unknownCaller: "متصل غير معروف", answer: "رد", reject: "رفض",
    otherTabCall: "توجد مكالمة جارية في علامة التبويب الأخرى.", takeOver: "استخدم الهاتف في علامة التبويب هذه",
    calling: "جارٍ الطلب…", ringing: "يرن…", onHold: "قيد الانتظار", inCall: "في مكالمة",
    mute: "كتم", unmute: "إلغاء الكتم", hold: "انتظار", resume: "استئناف", transferTo: "تحويل إلى…", transfer: "تحويل",
    hangUp: "إنهاء", afterCall: (n) => `بعد المكالمة مع ${n}`, callEnded: "انتهت المكالمة",
    notConnected: (why) => `لم يتم الاتصال: ${why}`, unknownReason: "سبب غير معروف",
    note: "ملاحظة", noCase: "بلا قضية", save: "حفظ", skip: "تخطٍّ", numberPlaceholder: "رقم أو تحويلة", call: "اتصال",
    problem: {
      pbxDown: ({ url }) => `تعذّر الوصول إلى المقسم على ${url}. تأكد من أن المقسم يعمل وأن هذا الجهاز يصل إليه؛ يواصل الهاتف المحاولة.`,
      pbxDownOrCert: ({ url, https }) => `تعذّر الوصول إلى المقسم على ${url}، أو أن شهادته غير موثوقة: افتح ${https} مرة واحدة في هذا المتصفح واقبل الشهادة، ثم أعد تحميل الصفحة.`,
      wrongPassword: ({ ext }) => `كلمة مرور SIP خاطئة للتحويلة ${ext}: اطلب من المسؤول تعيينها من جديد في صفحة التحويلات.`,
      refused: ({ ext, code }) => `رفض المقسم التحويلة ${ext} (${code}): اطلب من المسؤول مراجعة التحويلة.`,
      noExtension: () => "لا توجد تحويلة مخصّصة لك: اطلب من المسؤول تعيين تحويلة لك في صفحة التحويلات.",
      noPbx: () => "لم يُضبط مقسم لهذا المكتب: يضبطه المسؤول في صفحة التحويلات.",
    },
    status: {
      COMPLETED: "مكتملة", ANSWERED: "في مكالمة", RINGING: "يرن", MISSED: "فائتة", REJECTED: "مرفوضة",
      BUSY: "مشغول", FAILED: "فشلت", NO_ANSWER: "لا رد",
    },
  },
};
const labelsFor = (lang) => LABELS[lang === "ar" ? "ar" : "en"];

// The page a browser opens to trust a PBX's certificate: the wss URL's host and port over https.
function httpsOf(wsUrl) {
  try {
    const u = new URL(wsUrl);
    return `https://${u.host}/`;
  } catch (e) {
    return wsUrl;
  }
}

function micError(err) {
  const name = (err && err.name) || "";
  if (name === "NotAllowedError" || name === "SecurityError") return "micDenied";
  if (name === "NotFoundError" || name === "OverconstrainedError") return "micMissing";
  if (name === "NotReadableError") return "micBusy";
  return "micFailed";
}

function remoteOf(session) {
  const id = session.remote_identity;
  return (id && id.uri && id.uri.user) || "";
}

function fmtTime(s) {
  const m = Math.floor(s / 60);
  return `${m}:${String(s % 60).padStart(2, "0")}`;
}

// The ringtone is synthesised (no file to fetch); browsers only let it sound after the
// user has interacted with the page, so the card is the primary signal.
function makeRinger() {
  let ctx = null;
  let timer = null;
  const unlock = () => {
    try {
      ctx = ctx || new (window.AudioContext || window.webkitAudioContext)();
      if (ctx.state === "suspended") ctx.resume();
    } catch (e) { /* no audio output */ }
  };
  window.addEventListener("pointerdown", unlock, { capture: true });
  window.addEventListener("keydown", unlock, { capture: true });
  const beep = () => {
    if (!ctx || ctx.state !== "running") return;
    const osc = ctx.createOscillator();
    const gain = ctx.createGain();
    osc.frequency.value = 440;
    gain.gain.value = 0.08;
    osc.connect(gain).connect(ctx.destination);
    osc.start();
    osc.stop(ctx.currentTime + 0.8);
  };
  return {
    start() { if (!timer) { beep(); timer = setInterval(beep, 3000); } },
    stop() { clearInterval(timer); timer = null; },
    canPlay() { return !!ctx && ctx.state === "running"; },
    dispose() {
      this.stop();
      window.removeEventListener("pointerdown", unlock, { capture: true });
      window.removeEventListener("keydown", unlock, { capture: true });
    },
  };
}

const css = `
.wq-sp-fab{position:fixed;bottom:20px;inset-inline-end:20px;z-index:1000;width:56px;height:56px;border-radius:50%;border:none;background:var(--accent-9,#0d9488);color:#fff;font-size:24px;cursor:pointer;box-shadow:0 4px 14px rgba(0,0,0,.25)}
.wq-sp-dot{position:absolute;top:6px;inset-inline-end:6px;width:12px;height:12px;border-radius:50%;border:2px solid #fff}
.wq-sp-panel{position:fixed;bottom:88px;inset-inline-end:20px;z-index:1000;width:300px;max-height:80vh;overflow:auto;background:var(--color-panel-solid,#fff);color:var(--gray-12,#111);border:1px solid var(--gray-6,#ddd);border-radius:12px;box-shadow:0 8px 30px rgba(0,0,0,.2);padding:14px;font-size:14px}
.wq-sp-status{font-size:12px;color:var(--gray-11,#555);margin-bottom:8px}
.wq-sp-input{width:100%;box-sizing:border-box;font-size:20px;padding:6px 8px;border:1px solid var(--gray-7,#ccc);border-radius:8px;margin-bottom:6px;background:transparent;color:inherit}
.wq-sp-pad{display:grid;grid-template-columns:repeat(3,1fr);gap:6px;margin:6px 0}
.wq-sp-pad button,.wq-sp-btn{padding:8px;border-radius:8px;border:1px solid var(--gray-6,#ddd);background:var(--gray-2,#f7f7f7);color:inherit;cursor:pointer;font-size:15px}
.wq-sp-btn.on{background:var(--accent-4,#ccfbf1)}
.wq-sp-btn:disabled{opacity:.45;cursor:not-allowed}
.wq-sp-green{background:#16a34a!important;color:#fff!important;border:none!important}
.wq-sp-red{background:#dc2626!important;color:#fff!important;border:none!important}
.wq-sp-row{display:flex;gap:6px;flex-wrap:wrap;margin:6px 0}
.wq-sp-row>*{flex:1}
.wq-sp-card{position:fixed;top:20px;inset-inline-end:20px;z-index:1001;width:300px;background:var(--color-panel-solid,#fff);color:var(--gray-12,#111);border:2px solid #16a34a;border-radius:12px;box-shadow:0 8px 30px rgba(0,0,0,.3);padding:14px}
.wq-sp-err{color:#b91c1c;font-size:13px;margin:6px 0}
.wq-sp-recent{list-style:none;padding:0;margin:6px 0;font-size:13px}
.wq-sp-recent li{display:flex;justify-content:space-between;padding:3px 0;cursor:pointer}
.wq-sp-muted{color:var(--gray-11,#666);font-size:12px}
`;

const DOT = {
  idle: "#9ca3af", registering: "#f59e0b", registered: "#16a34a", failed: "#dc2626",
  disconnected: "#dc2626", follower: "#3b82f6",
};

export function Softphone({
  config, command, match, recent, cases, lang,
  onCallEvent, onRegistration, onLookup, onWrapUp,
}) {
  const [reg, setReg] = useState({ state: "idle", reason: "" });
  // Why the phone is not registered, as a label key and its values (so it follows the language).
  const [problem, setProblem] = useState(null);
  const [leader, setLeader] = useState(false);
  const [open, setOpen] = useState(false);
  const [number, setNumber] = useState("");
  const [error, setError] = useState("");
  const [calls, setCalls] = useState([]); // [{key, direction, remote, phase, held, muted, answeredAt}]
  const [now, setNow] = useState(Date.now());
  const [transferTo, setTransferTo] = useState("");
  const [wrapUp, setWrapUp] = useState(null); // {callId, direction, remote}
  const [note, setNote] = useState("");
  const [caseId, setCaseId] = useState("");
  const [followerView, setFollowerView] = useState(null);

  const uaRef = useRef(null);
  const sessionsRef = useRef(new Map());
  const audioRef = useRef(null);
  const ringerRef = useRef(null);
  const takeoverRef = useRef(null);
  const channelRef = useRef(null);
  const lastCommand = useRef(null);
  const regRef = useRef({ state: "idle", reason: "" });
  const cb = useRef({});
  cb.current = { onCallEvent, onRegistration, onLookup, onWrapUp };
  const L = labelsFor(lang);
  // The user agent's handlers outlive renders: they read the language at the time of the event.
  const langRef = useRef(L);
  langRef.current = L;

  // The SIP password and the TURN credentials never sit in the app's state (the server
  // keeps state on disk or in Redis): the phone asks the API for them with the user's own
  // session token, keeps them in memory only, and retries with backoff.
  const [secret, setSecret] = useState(null);
  useEffect(() => {
    setSecret(null);
    if (!config || !config.wss_url || !config.credentials_url) return undefined;
    let cancelled = false;
    let timer = null;
    const load = (attempt) => {
      const url = new URL(config.credentials_url);
      if (["localhost", "127.0.0.1", "0.0.0.0", "::1"].includes(url.hostname)) url.hostname = window.location.hostname;
      const token = window.localStorage.getItem("watheeq_session") || "";
      fetch(url.toString(), { headers: { Authorization: `Bearer ${token}` }, cache: "no-store" })
        .then((r) => (r.ok ? r.json() : Promise.reject(new Error(`HTTP ${r.status}`))))
        .then((own) => { if (!cancelled) setSecret({ password: own.password, ice_servers: own.ice_servers || [] }); })
        .catch(() => { if (!cancelled) timer = setTimeout(() => load(attempt + 1), Math.min(30000, 500 * 2 ** attempt)); });
    };
    load(0);
    return () => { cancelled = true; clearTimeout(timer); };
  }, [config && config.wss_url, config && config.sip_uri, config && config.credentials_url]);
  const enabled = !!(config && config.wss_url && secret && secret.password);
  const userKey = enabled ? `watheeq-softphone:${config.sip_uri}` : "";

  // ---------------------------------------------------------------- call bookkeeping
  const sync = useCallback(() => {
    const list = [];
    sessionsRef.current.forEach((entry) => list.push({ ...entry.view }));
    setCalls(list);
    if (channelRef.current) channelRef.current.postMessage({ type: "calls", calls: list });
  }, []);

  const report = useCallback((kind, entry, extra = {}) => {
    const s = entry.session;
    const send = cb.current.onCallEvent;
    if (!send || !entry.callId) return;
    send({
      kind,
      call_id: entry.callId,
      direction: entry.view.direction,
      remote: entry.view.remote,
      at: Date.now(),
      started_at: entry.startedAt,
      answered_at: s.start_time ? s.start_time.getTime() : null,
      originator: extra.originator || null,
      cause: extra.cause || null,
      status_code: extra.status_code || null,
    });
  }, []);

  const attachAudio = useCallback((pc) => {
    if (!pc) return;
    const play = () => {
      const stream = new MediaStream();
      pc.getReceivers().forEach((r) => r.track && stream.addTrack(r.track));
      if (audioRef.current) {
        audioRef.current.srcObject = stream;
        audioRef.current.play().catch(() => {});
      }
    };
    pc.addEventListener("track", play);
    if (pc.getReceivers().length) play();
  }, []);

  const endEarlyIce = (session) => {
    // JsSIP waits for ICE gathering to complete before sending the SDP; with STUN/TURN
    // that can take many seconds. A short grace after the first candidate is enough.
    let grace = null;
    let cap = null;
    session.on("icecandidate", (e) => {
      if (!cap) cap = setTimeout(() => e.ready(), ICE_MAX_MS);
      if (!grace) grace = setTimeout(() => { clearTimeout(cap); e.ready(); }, ICE_GRACE_MS);
    });
  };

  const track = useCallback((session, direction, request) => {
    const key = session.id;
    const entry = {
      session,
      callId: request && request.call_id,
      startedAt: Date.now(),
      view: { key, direction, remote: remoteOf(session), phase: direction === "incoming" ? "ringing" : "calling", held: false, muted: false, answeredAt: null },
    };
    sessionsRef.current.set(key, entry);
    const update = (patch) => { Object.assign(entry.view, patch); sync(); };
    const trace = (type, extra) => mark(`call:${type}`, { key, direction, ...(extra || {}) });
    const stopRing = () => { if (ringerRef.current) ringerRef.current.stop(); };

    endEarlyIce(session);
    session.on("peerconnection", (e) => attachAudio(e.peerconnection));
    if (session.connection) attachAudio(session.connection);
    session.on("progress", (e) => {
      trace("progress");
      report("progress", entry, { originator: e.originator, status_code: e.response && e.response.status_code });
      if (direction === "outgoing") update({ phase: "ringing-remote" });
    });
    session.on("accepted", (e) => {
      trace("accepted");
      stopRing();
      report("accepted", entry, { originator: e.originator });
      update({ phase: "in-call", answeredAt: Date.now() });
    });
    session.on("hold", (e) => { trace("hold", { originator: e.originator }); update({ held: true }); });
    session.on("unhold", (e) => { trace("unhold", { originator: e.originator }); update({ held: false }); });
    session.on("muted", () => update({ muted: true }));
    session.on("unmuted", () => update({ muted: false }));
    const finish = (kind) => (e) => {
      trace(kind, { cause: e.cause, originator: e.originator });
      stopRing();
      report(kind, entry, { originator: e.originator, cause: e.cause, status_code: e.message && e.message.status_code });
      sessionsRef.current.delete(key);
      if (entry.localStream) entry.localStream.getTracks().forEach((t) => t.stop());
      sync();
      if (entry.callId) setWrapUp({ callId: entry.callId, direction: entry.view.direction, remote: entry.view.remote, outcome: kind === "ended" ? "ended" : e.cause });
      setNote("");
      setCaseId("");
    };
    session.on("ended", finish("ended"));
    session.on("failed", finish("failed"));
    trace("new", { remote: entry.view.remote });
    report("new", entry);
    sync();
    return entry;
  }, [attachAudio, report, sync]);

  // ---------------------------------------------------------------- the user agent
  useEffect(() => {
    if (!enabled) return undefined;
    ringerRef.current = makeRinger();
    let ua = null;
    let retryTimer = null;
    let retries = 0;
    let firstRegistration = true;
    let released = null;
    const channel = new BroadcastChannel(userKey);
    channelRef.current = null;
    channel.onmessage = (m) => {
      const msg = m.data || {};
      // Another follower's "follower" says nothing about the tab that holds the phone.
      if (msg.type === "status" && !uaRef.current && msg.reg && msg.reg.state !== "follower") setFollowerView((v) => ({ ...(v || {}), reg: msg.reg }));
      if (msg.type === "calls" && !uaRef.current) setFollowerView((v) => ({ ...(v || {}), calls: msg.calls }));
      if (msg.type === "hello" && uaRef.current) channel.postMessage({ type: "status", reg: regRef.current });
    };

    const publish = (state, reason = "") => {
      mark(`reg:${state}`, reason);
      regRef.current = { state, reason };
      setReg({ state, reason });
      channel.postMessage({ type: "status", reg: regRef.current });
    };

    const start = () => {
      setLeader(true);
      channelRef.current = channel;
      const socket = new JsSIP.WebSocketInterface(config.wss_url);
      ua = new JsSIP.UA({
        sockets: [socket],
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
        connection_recovery_min_interval: 2,
        connection_recovery_max_interval: 30,
        no_answer_timeout: config.no_answer_timeout || 60,
        user_agent: "Watheeq softphone",
      });
      uaRef.current = ua;
      probe().calls = () => [...sessionsRef.current.values()].map((x) => ({
        ...x.view, callId: x.callId || null, pc: x.session.connection || null,
      }));
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
      ua.on("connecting", (e) => { if (e.attempts > 1) publish("disconnected", langRef.current.attempt(e.attempts)); });
      ua.on("connected", () => { everConnected = true; });
      ua.on("disconnected", (e) => {
        publish("disconnected", e.reason || (e.error ? langRef.current.connError : langRef.current.connClosed));
        unreachable();
      });
      ua.on("registered", () => {
        retries = 0;
        setProblem(null);
        publish("registered");
        if (cb.current.onRegistration) cb.current.onRegistration({ state: "registered", first: firstRegistration, at: Date.now() });
        firstRegistration = false;
      });
      ua.on("unregistered", () => { if (ua.isConnected()) publish("registering", langRef.current.regExpired); });
      ua.on("registrationFailed", (e) => {
        // JsSIP retries by itself only after a 423; everything else is ours to retry.
        retries += 1;
        const delay = Math.min(REGISTER_RETRY_MAX_S, 2 ** Math.min(retries, 5)) * (0.75 + Math.random() / 2);
        const code = e.response ? ` (${e.response.status_code})` : "";
        publish("failed", `${e.cause}${code}; ${langRef.current.retryingIn(Math.round(delay))}`);
        const status = e.response && e.response.status_code;
        if (status === 401 || status === 407) {
          mark("problem", "wrongPassword");
          setProblem({ key: "wrongPassword", ext: config.extension });
        } else if (status) {
          setProblem({ key: "refused", ext: config.extension, code: `${status} ${e.response.reason_phrase || ""}`.trim() });
        }
        if (cb.current.onRegistration) cb.current.onRegistration({ state: "failed", cause: e.cause, at: Date.now() });
        clearTimeout(retryTimer);
        retryTimer = setTimeout(() => { if (ua.isConnected()) ua.register(); }, delay * 1000);
      });
      ua.on("newRTCSession", (e) => {
        const session = e.session;
        if (e.originator === "remote") {
          const busy = [...sessionsRef.current.values()].some((x) => x.view.phase !== "ringing");
          if (busy && config.call_waiting === false) {
            session.terminate({ status_code: 486, reason_phrase: "Busy Here" });
            return;
          }
          track(session, "incoming", e.request);
          if (cb.current.onLookup) cb.current.onLookup(remoteOf(session));
          if (ringerRef.current) ringerRef.current.start();
        } else {
          track(session, "outgoing", e.request);
        }
      });
      ua.start();
    };

    const stop = () => {
      clearTimeout(retryTimer);
      if (ua) {
        ua.removeAllListeners();
        sessionsRef.current.forEach((entry) => {
          // The log learns of it here: the page or the tab is going away mid-call.
          report(entry.view.phase === "in-call" ? "ended" : "failed", entry, { originator: "local", cause: entry.view.phase === "in-call" ? "Terminated" : "Canceled" });
        });
        ua.stop();
      }
      sessionsRef.current.clear();
      uaRef.current = null;
      ua = null;
      setLeader(false);
      setCalls([]);
    };

    // Only one tab per user registers (Web Locks): the others follow its state through the
    // BroadcastChannel and get the lock when it closes, or take it over on request.
    const lockName = userKey;
    let waiting = null;
    let unmounted = false;
    const acquire = (steal) => {
      waiting = steal ? null : new AbortController();
      return navigator.locks.request(lockName, steal ? { steal: true } : { signal: waiting.signal }, () => {
        start();
        return new Promise((resolve) => { released = resolve; });
      }).catch(() => {}).finally(() => {
        const wasLeader = !!uaRef.current;
        stop();
        // Another tab took the phone: follow it, and queue for the lock again so this tab
        // gets the phone back when that one closes.
        if (wasLeader && !unmounted) {
          publish("follower");
          acquire(false);
          channel.postMessage({ type: "hello" });
        }
      });
    };
    takeoverRef.current = () => { if (waiting) waiting.abort(); acquire(true); };
    if (navigator.locks) {
      acquire(false);
      channel.postMessage({ type: "hello" });
      setTimeout(() => { if (!uaRef.current) publish("follower"); }, 150);
    } else {
      start();
    }
    const onHide = () => stop();
    window.addEventListener("pagehide", onHide);
    return () => {
      unmounted = true;
      window.removeEventListener("pagehide", onHide);
      if (waiting) waiting.abort();
      if (released) released();
      stop();
      channel.close();
      channelRef.current = null;
      if (ringerRef.current) ringerRef.current.dispose();
    };
    // A new UA only when the identity or the PBX changes.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [enabled, config && config.wss_url, config && config.sip_uri, secret && secret.password]);

  // Timer for the running call clocks.
  useEffect(() => {
    if (!calls.some((c) => c.phase === "in-call")) return undefined;
    const t = setInterval(() => setNow(Date.now()), 500);
    return () => clearInterval(t);
  }, [calls]);

  // ---------------------------------------------------------------- actions
  const getMic = async () => {
    try {
      return await navigator.mediaDevices.getUserMedia({ audio: true, video: false });
    } catch (err) {
      setError(micError(err));
      return null;
    }
  };
  const pcConfig = () => ({ iceServers: (secret && secret.ice_servers) || [] });

  const dial = useCallback(async (target) => {
    const ua = uaRef.current;
    const dest = String(target || "").replace(/[^0-9*#+A-Za-z@.]/g, "");
    setError("");
    if (!dest) return;
    mark("dial", dest);
    if (!ua || !ua.isRegistered()) { setError("notRegistered"); return; }
    const stream = await getMic();
    if (!stream) return;
    const domain = config.sip_domain;
    const uri = dest.includes("@") ? `sip:${dest}` : `sip:${dest}@${domain}`;
    [...sessionsRef.current.values()].forEach((x) => { if (x.view.phase === "in-call" && !x.view.held) x.session.hold(); });
    const session = ua.call(uri, {
      mediaStream: stream,
      mediaConstraints: { audio: true, video: false },
      pcConfig: pcConfig(),
      rtcOfferConstraints: { offerToReceiveAudio: true, offerToReceiveVideo: false },
    });
    const entry = sessionsRef.current.get(session.id);
    if (entry) entry.localStream = stream;
    setOpen(true);
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [config, track]);

  const answer = async (key) => {
    const entry = sessionsRef.current.get(key);
    if (!entry) return;
    setError("");
    const stream = await getMic();
    if (!stream) return;
    sessionsRef.current.forEach((x) => { if (x !== entry && x.view.phase === "in-call" && !x.view.held) x.session.hold(); });
    entry.localStream = stream;
    entry.session.answer({ mediaStream: stream, mediaConstraints: { audio: true, video: false }, pcConfig: pcConfig() });
    attachAudio(entry.session.connection);
    setOpen(true);
  };
  const reject = (key) => {
    const entry = sessionsRef.current.get(key);
    if (entry) entry.session.terminate({ status_code: 603, reason_phrase: "Decline" });
  };
  const hangup = (key) => {
    const entry = sessionsRef.current.get(key);
    if (entry) entry.session.terminate();
  };
  const toggleHold = (key) => {
    const entry = sessionsRef.current.get(key);
    if (!entry) return;
    if (entry.session.isOnHold().local) entry.session.unhold(); else entry.session.hold();
  };
  const toggleMute = (key) => {
    const entry = sessionsRef.current.get(key);
    if (!entry) return;
    if (entry.session.isMuted().audio) entry.session.unmute({ audio: true }); else entry.session.mute({ audio: true });
  };
  const dtmf = (key, tone) => {
    const entry = sessionsRef.current.get(key);
    if (!entry) return;
    entry.session.sendDTMF(tone, { transportType: config.dtmf_transport === "INFO" ? "INFO" : "RFC2833", duration: 100, interToneGap: 70 });
  };
  const transfer = (key) => {
    const entry = sessionsRef.current.get(key);
    const dest = transferTo.replace(/[^0-9*#+A-Za-z@.]/g, "");
    if (!entry || !dest) return;
    const uri = dest.includes("@") ? `sip:${dest}` : `sip:${dest}@${config.sip_domain}`;
    entry.session.refer(uri, {
      eventHandlers: {
        accepted: () => entry.session.terminate(),
        failed: () => setError("transferFailed"),
      },
    });
    setTransferTo("");
  };

  // Commands from Python (click-to-call) run once per sequence number.
  useEffect(() => {
    if (!command || !command.seq || lastCommand.current === command.seq) return;
    lastCommand.current = command.seq;
    if (command.op === "dial") { setNumber(command.target || ""); setOpen(true); dial(command.target); }
  }, [command, dial]);

  // Matched client as the number is typed.
  useEffect(() => {
    if (!enabled || !cb.current.onLookup) return undefined;
    const t = setTimeout(() => cb.current.onLookup(number), 250);
    return () => clearTimeout(t);
  }, [number, enabled]);

  // Signed in but nothing to register with: say why, in the same place the phone would be.
  const setupProblem = config && config.problem ? { key: config.problem === "no_pbx" ? "noPbx" : "noExtension" } : null;
  if (setupProblem) {
    const text = L.problem[setupProblem.key]();
    return (
      <>
        <style>{css}</style>
        <button type="button" className="wq-sp-fab" aria-label={`${L.phone}: ${text}`} title={text} data-testid="softphone-toggle" data-state="unavailable" onClick={() => setOpen(!open)}>
          ☎
          <span className="wq-sp-dot" style={{ background: DOT.idle }} />
        </button>
        {open ? (
          <div className="wq-sp-panel" data-testid="softphone-panel" dir={lang === "ar" ? "rtl" : "ltr"} lang={lang}>
            <div className="wq-sp-err" role="status" data-testid="softphone-problem" data-problem={setupProblem.key}>{text}</div>
          </div>
        ) : null}
      </>
    );
  }
  if (!enabled) return null;

  const active = calls.find((c) => c.phase !== "ringing" || c.direction === "outgoing");
  const incoming = calls.filter((c) => c.direction === "incoming" && c.phase === "ringing");
  const regLabel = (r) => ({
    idle: L.offline, registering: L.connecting, registered: `${L.ready} · ${config.extension}`,
    failed: L.regFailed, disconnected: L.disconnected, follower: L.follower,
  }[r.state] || r.state);
  // A follower says so (and offers to take over), with the leading tab's state after it:
  // showing that state as its own would pass this tab off as the registered one.
  const leaderReg = followerView && followerView.reg;
  const shownReg = leader || reg.state !== "follower" ? reg : { state: "follower", reason: leaderReg ? regLabel(leaderReg) : "" };
  const statusText = regLabel(shownReg);
  // Only the tab that holds the phone knows why it is not registered.
  const problemText = leader && problem && shownReg.state !== "registered" ? L.problem[problem.key](problem) : "";
  const errorText = error ? (L[error] || error) : "";
  const dir = lang === "ar" ? "rtl" : "ltr";
  const matchFor = (num) => (match && match.number === num && match.name ? match : null);

  const onKey = (e) => { if (e.key === "Enter") dial(number); };
  const onPaste = (e) => {
    const text = (e.clipboardData || window.clipboardData).getData("text");
    e.preventDefault();
    setNumber(text.replace(/[^0-9*#+]/g, ""));
  };

  return (
    <>
      <style>{css}</style>
      <audio ref={audioRef} autoPlay data-testid="softphone-remote-audio" />
      <button type="button" className="wq-sp-fab" aria-label={`${L.phone}: ${statusText}`} title={problemText || statusText} data-testid="softphone-toggle" data-state={shownReg.state} onClick={() => setOpen(!open)}>
        ☎
        <span className="wq-sp-dot" style={{ background: DOT[shownReg.state] || DOT.idle }} />
      </button>

      {incoming.map((c) => {
        const m = matchFor(c.remote);
        return (
          <div key={c.key} className="wq-sp-card" role="alertdialog" data-testid="softphone-incoming" dir={dir} lang={lang}>
            <div className="wq-sp-muted">{active ? L.callWaiting : L.incomingCall}{ringerRef.current && !ringerRef.current.canPlay() ? ` · ${L.enableRingtone}` : ""}</div>
            <div style={{ fontSize: 20, fontWeight: 600 }} dir="ltr" data-testid="softphone-incoming-number">{c.remote}</div>
            {m ? <a href={`/clients/${m.client_id}`} data-testid="softphone-incoming-client">{m.name}</a> : <div className="wq-sp-muted">{L.unknownCaller}</div>}
            <div className="wq-sp-row">
              <button type="button" className="wq-sp-btn wq-sp-green" data-testid="softphone-answer" onClick={() => answer(c.key)}>{L.answer}</button>
              <button type="button" className="wq-sp-btn wq-sp-red" data-testid="softphone-reject" onClick={() => reject(c.key)}>{L.reject}</button>
            </div>
            {errorText ? <div className="wq-sp-err">{errorText}</div> : null}
          </div>
        );
      })}

      {open ? (
        <div className="wq-sp-panel" data-testid="softphone-panel" dir={dir} lang={lang}>
          <div className="wq-sp-status" data-testid="softphone-status" data-state={shownReg.state}>
            {statusText}{shownReg.reason ? ` · ${shownReg.reason}` : ""}
          </div>
          {!leader && shownReg.state === "follower" ? (
            <div>
              {(followerView && followerView.calls && followerView.calls.length) ? <div className="wq-sp-muted">{L.otherTabCall}</div> : null}
              <button type="button" className="wq-sp-btn" data-testid="softphone-take-over" onClick={() => takeoverRef.current && takeoverRef.current()}>{L.takeOver}</button>
            </div>
          ) : null}
          {problemText ? <div className="wq-sp-err" role="status" data-testid="softphone-problem" data-problem={problem.key}>{problemText}</div> : null}
          {errorText ? <div className="wq-sp-err" data-testid="softphone-error">{errorText}</div> : null}

          {active ? (
            <div data-testid="softphone-call" data-phase={active.phase}>
              <div style={{ fontSize: 18, fontWeight: 600 }} dir="ltr">{active.remote}</div>
              {matchFor(active.remote) ? <div>{matchFor(active.remote).name}</div> : null}
              <div className="wq-sp-muted" data-testid="softphone-call-state">
                {active.phase === "calling" ? L.calling : active.phase === "ringing-remote" ? L.ringing : active.held ? L.onHold : L.inCall}
                {active.answeredAt ? ` · ${fmtTime(Math.max(0, Math.floor((now - active.answeredAt) / 1000)))}` : ""}
              </div>
              {active.phase === "in-call" ? (
                <>
                  <div className="wq-sp-row">
                    <button type="button" className={`wq-sp-btn${active.muted ? " on" : ""}`} data-testid="softphone-mute" onClick={() => toggleMute(active.key)}>{active.muted ? L.unmute : L.mute}</button>
                    <button type="button" className={`wq-sp-btn${active.held ? " on" : ""}`} data-testid="softphone-hold" onClick={() => toggleHold(active.key)}>{active.held ? L.resume : L.hold}</button>
                  </div>
                  <div className="wq-sp-pad">
                    {DIAL_KEYS.map((k) => <button type="button" key={k} data-testid={`softphone-dtmf-${k}`} onClick={() => dtmf(active.key, k)}>{k}</button>)}
                  </div>
                  <div className="wq-sp-row">
                    <input className="wq-sp-input" style={{ fontSize: 14 }} placeholder={L.transferTo} dir="ltr" value={transferTo} onChange={(e) => setTransferTo(e.target.value)} data-testid="softphone-transfer-input" />
                    <button type="button" className="wq-sp-btn" onClick={() => transfer(active.key)} data-testid="softphone-transfer">{L.transfer}</button>
                  </div>
                </>
              ) : null}
              <button type="button" className="wq-sp-btn wq-sp-red" style={{ width: "100%" }} data-testid="softphone-hangup" onClick={() => hangup(active.key)}>{L.hangUp}</button>
            </div>
          ) : wrapUp ? (
            <div data-testid="softphone-wrapup">
              <div style={{ fontWeight: 600 }}>{L.afterCall(wrapUp.remote)}</div>
              <div className={wrapUp.outcome === "ended" ? "wq-sp-muted" : "wq-sp-err"} data-testid="softphone-outcome">
                {wrapUp.outcome === "ended" ? L.callEnded : L.notConnected(wrapUp.outcome || L.unknownReason)}
              </div>
              <textarea className="wq-sp-input" style={{ fontSize: 14, minHeight: 60 }} placeholder={L.note} value={note} onChange={(e) => setNote(e.target.value)} data-testid="softphone-wrapup-note" />
              {cases && cases.length ? (
                <select className="wq-sp-input" style={{ fontSize: 14 }} value={caseId} onChange={(e) => setCaseId(e.target.value)} data-testid="softphone-wrapup-case">
                  <option value="">{L.noCase}</option>
                  {cases.map((c) => <option key={c.id} value={String(c.id)}>{c.title}</option>)}
                </select>
              ) : null}
              <div className="wq-sp-row">
                <button type="button" className="wq-sp-btn wq-sp-green" data-testid="softphone-wrapup-save" onClick={() => {
                  if (cb.current.onWrapUp && (note.trim() || caseId)) cb.current.onWrapUp({ call_id: wrapUp.callId, direction: wrapUp.direction, note: note.trim(), case_id: caseId ? Number(caseId) : null });
                  setWrapUp(null);
                }}>{L.save}</button>
                <button type="button" className="wq-sp-btn" onClick={() => setWrapUp(null)} data-testid="softphone-wrapup-skip">{L.skip}</button>
              </div>
            </div>
          ) : leader ? (
            <div>
              <input className="wq-sp-input" inputMode="tel" placeholder={L.numberPlaceholder} dir="ltr" value={number} data-testid="softphone-number"
                onChange={(e) => setNumber(e.target.value.replace(/[^0-9*#+]/g, ""))} onKeyDown={onKey} onPaste={onPaste} />
              {matchFor(number) ? <div data-testid="softphone-number-client">{matchFor(number).name}</div> : null}
              <div className="wq-sp-pad">
                {DIAL_KEYS.map((k) => <button type="button" key={k} onClick={() => setNumber(number + k)}>{k}</button>)}
              </div>
              <button type="button" className="wq-sp-btn wq-sp-green" style={{ width: "100%" }} data-testid="softphone-dial" disabled={shownReg.state !== "registered"} onClick={() => dial(number)}>{L.call}</button>
              {recent && recent.length ? (
                <ul className="wq-sp-recent" data-testid="softphone-recent">
                  {recent.map((r) => (
                    <li key={r.id} onClick={() => setNumber(r.remote_number)}>
                      <span><span dir="ltr">{r.direction === "INBOUND" ? "↙" : "↗"}</span> <bdi>{r.client_name || r.remote_number}</bdi></span>
                      <span className="wq-sp-muted">{L.status[r.status] || r.status}</span>
                    </li>
                  ))}
                </ul>
              ) : null}
            </div>
          ) : null}
        </div>
      ) : null}
    </>
  );
}
