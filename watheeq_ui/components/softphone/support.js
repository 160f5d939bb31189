// Small pieces the softphone's hooks share: the devtools/e2e probe, the SIP instance id,
// target and identity helpers, microphone errors and the synthesised ringtone.

const INSTANCE_KEY = "watheeq.softphone.instance";

export function instanceId() {
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
export function probe() {
  if (!window.__watheeqSoftphone) window.__watheeqSoftphone = { timeline: [], calls: () => [] };
  return window.__watheeqSoftphone;
}
export function mark(type, detail) {
  const tl = probe().timeline;
  tl.push({ type, detail: detail || null, at: Date.now(), t: performance.now() });
  if (tl.length > TIMELINE_MAX) tl.shift();
}

// The page a browser opens to trust a PBX's certificate: the wss URL's host and port over https.
export function httpsOf(wsUrl) {
  try {
    const u = new URL(wsUrl);
    return `https://${u.host}/`;
  } catch (e) {
    return wsUrl;
  }
}

export function micError(err) {
  const name = (err && err.name) || "";
  if (name === "NotAllowedError" || name === "SecurityError") return "micDenied";
  if (name === "NotFoundError" || name === "OverconstrainedError") return "micMissing";
  if (name === "NotReadableError") return "micBusy";
  return "micFailed";
}

export function remoteOf(session) {
  const id = session.remote_identity;
  return (id && id.uri && id.uri.user) || "";
}

// What the agent typed (a number, an extension or user@host) as a SIP URI, or "".
export function sipTarget(text, domain) {
  const dest = String(text || "").replace(/[^0-9*#+A-Za-z@.]/g, "");
  if (!dest) return "";
  return dest.includes("@") ? `sip:${dest}` : `sip:${dest}@${domain}`;
}

// The ringtone is synthesised (no file to fetch); browsers only let it sound after the
// user has interacted with the page, so the card is the primary signal.
export function makeRinger() {
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
