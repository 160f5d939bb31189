// The agent's calls: JsSIP sessions and what the panel shows of them (the call being
// talked to, the calls on hold beside it, the ringing ones), hold, mute, DTMF, blind
// transfer both ways, and the call events reported to the server's call log.
import { useCallback, useEffect, useRef, useState } from "react";
import { makeRinger, mark, micError, probe, remoteOf, sipTarget } from "./support.js";

const ICE_GRACE_MS = 400; // after the first candidate, stop waiting for more
const ICE_MAX_MS = 1500; // never wait longer than this for gathering
const AUDIO_ONLY = { audio: true, video: false };

const REGISTER_WAIT_MS = 5000;

function registeredWithin(ua, ms) {
  if (ua.isRegistered()) return Promise.resolve(true);
  return new Promise((resolve) => {
    const done = (ok) => { clearTimeout(timer); ua.removeListener("registered", onRegistered); resolve(ok); };
    const onRegistered = () => done(true);
    const timer = setTimeout(() => done(false), ms);
    ua.on("registered", onRegistered);
  });
}

const ringingIn = (c) => c.direction === "incoming" && c.phase === "ringing";

// The call the agent talks to is the newest one they have not put on hold; the others
// are listed beside it. When every call is on hold, the newest one is shown (to resume).
export function liveAndHeld(calls) {
  const shown = calls.filter((c) => !ringingIn(c));
  let live = null;
  for (let i = shown.length - 1; i >= 0 && !live; i -= 1) if (!shown[i].localHold) live = shown[i];
  if (!live && shown.length) live = shown[shown.length - 1];
  return { live, held: shown.filter((c) => c !== live) };
}

// A CANCEL saying another phone of the group took the call (RFC 3326 Reason cause=200:
// what Kamailio's forking and Asterisk's ring groups send).
function answeredElsewhere(e) {
  const request = e.originator === "remote" && e.message && e.message.method === "CANCEL" ? e.message : null;
  const reason = request && request.getHeader ? request.getHeader("Reason") || "" : "";
  return /cause=200\b/.test(reason);
}

const statusLine = (line) => (line ? `${line.status_code} ${line.reason_phrase || ""}`.trim() : "");

// active: this tab holds the phone. uaRef: the user agent (useUserAgent fills it).
// callbacks: {onCallEvent, onLookup, onWrapUp} of the component, read at event time.
export function useCalls({ uaRef, active, config, secret, callbacks, publishCalls }) {
  const [calls, setCalls] = useState([]); // views: {key, direction, remote, phase, held, localHold, muted, answeredAt, transfer}
  const [error, setError] = useState("");
  const [wrapUp, setWrapUp] = useState(null); // {callId, direction, remote, outcome, transferredTo}
  const [now, setNow] = useState(Date.now());
  const sessionsRef = useRef(new Map());
  const audioRef = useRef(null);
  const ringerRef = useRef(null);
  const playingRef = useRef(null);
  const cb = useRef({});
  cb.current = { ...callbacks, publishCalls };
  const configRef = useRef(config);
  configRef.current = config;
  const secretRef = useRef(secret);
  secretRef.current = secret;

  useEffect(() => {
    if (!active) return undefined;
    ringerRef.current = makeRinger();
    probe().calls = () => [...sessionsRef.current.values()].map((x) => ({
      ...x.view, callId: x.callId || null, pc: x.session.connection || null,
    }));
    return () => { ringerRef.current.dispose(); ringerRef.current = null; };
  }, [active]);

  // The remote audio is always the live call's: after a swap, a hang-up or a transfer.
  const playLive = useCallback((force) => {
    const { live } = liveAndHeld([...sessionsRef.current.values()].map((x) => x.view));
    const entry = live && sessionsRef.current.get(live.key);
    const pc = entry && entry.session.connection;
    if (!pc || !audioRef.current || (!force && playingRef.current === pc)) return;
    playingRef.current = pc;
    const stream = new MediaStream();
    pc.getReceivers().forEach((r) => r.track && stream.addTrack(r.track));
    audioRef.current.srcObject = stream;
    audioRef.current.play().catch(() => {});
  }, []);

  const sync = useCallback(() => {
    const list = [...sessionsRef.current.values()].map((entry) => ({ ...entry.view }));
    setCalls(list);
    if (cb.current.publishCalls) cb.current.publishCalls(list);
    playLive(false);
  }, [playLive]);

  // An incoming call is reported once the agent answers it or it ends: a ring group rings
  // every agent, and the ones whose phone stopped because a colleague answered ("call
  // completed elsewhere") never had that call, so it leaves no row (not even a missed one).
  const report = useCallback((kind, entry, extra = {}) => {
    const send = cb.current.onCallEvent;
    if (!send || !entry.callId) return;
    const payload = {
      kind,
      call_id: entry.callId,
      direction: entry.view.direction,
      remote: entry.view.remote,
      at: Date.now(),
      started_at: entry.startedAt,
      answered_at: entry.session.start_time ? entry.session.start_time.getTime() : null,
      originator: extra.originator || null,
      cause: extra.cause || null,
      status_code: extra.status_code || null,
    };
    if (entry.view.direction === "incoming" && entry.unreported) {
      // The agent's presence follows the ring at once (no call row: see above).
      if (kind === "new") send({ ...payload, kind: "ringing" });
      if (kind === "new" || kind === "progress") { entry.unreported.push(payload); return; }
      const held = entry.unreported;
      entry.unreported = null;
      if (extra.elsewhere) {
        mark("call:answered-elsewhere", { key: entry.view.key });
        send({ ...payload, kind: "ring_ended" });
        return;
      }
      held.forEach(send);
    }
    send(payload);
  }, []);

  const stopRingIfNoneRinging = () => {
    if (!ringerRef.current) return;
    if (![...sessionsRef.current.values()].some((x) => ringingIn(x.view))) ringerRef.current.stop();
  };

  const getMic = async () => {
    try {
      return await navigator.mediaDevices.getUserMedia(AUDIO_ONLY);
    } catch (err) {
      setError(micError(err));
      return null;
    }
  };
  const pcConfig = () => ({ iceServers: (secretRef.current && secretRef.current.ice_servers) || [] });
  const holdOthers = (entry) => {
    sessionsRef.current.forEach((x) => {
      if (x !== entry && x.view.phase === "in-call" && !x.session.isOnHold().local) x.session.hold();
    });
  };

  // The other side asks this phone to call someone else (a blind transfer, RFC 3515):
  // call the target with the Referred-By of the REFER; JsSIP's accept() reports the new
  // call's progress back to the transferor by NOTIFY. The call with the transferor ends
  // once the new one is answered (see track).
  const acceptRefer = async (entry, e) => {
    const target = e.request.refer_to.uri;
    mark("transfer:refer", { key: entry.view.key, target: target.user });
    const stream = await getMic();
    if (!stream) { e.reject(); return; }
    const referredBy = e.request.getHeader("Referred-By");
    const started = e.accept((session) => {
      session.data.referredFrom = entry.view.key;
      session.data.localStream = stream;
    }, {
      mediaStream: stream,
      mediaConstraints: AUDIO_ONLY,
      pcConfig: pcConfig(),
      rtcOfferConstraints: { offerToReceiveAudio: true, offerToReceiveVideo: false },
      extraHeaders: referredBy ? [`Referred-By: ${referredBy}`] : [],
    });
    if (started === false) stream.getTracks().forEach((t) => t.stop()); // the call ended meanwhile
  };

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

  const track = (session, direction, request) => {
    const key = session.id;
    const referredFrom = (session.data && session.data.referredFrom) || null;
    const entry = {
      session,
      callId: request && request.call_id,
      startedAt: Date.now(),
      localStream: (session.data && session.data.localStream) || null,
      unreported: direction === "incoming" ? [] : null, // see report
      view: {
        key, direction, remote: remoteOf(session), phase: direction === "incoming" ? "ringing" : "calling",
        held: false, localHold: false, muted: false, answeredAt: null, transfer: null,
      },
    };
    sessionsRef.current.set(key, entry);
    const update = (patch) => { Object.assign(entry.view, patch); sync(); };
    const trace = (type, extra) => mark(`call:${type}`, { key, direction, ...(extra || {}) });
    const holdState = () => {
      const h = session.isOnHold();
      return { held: h.local || h.remote, localHold: h.local };
    };

    endEarlyIce(session);
    const watch = (pc) => pc.addEventListener("track", () => playLive(true));
    session.on("peerconnection", (e) => watch(e.peerconnection));
    if (session.connection) watch(session.connection);
    session.on("progress", (e) => {
      trace("progress");
      report("progress", entry, { originator: e.originator, status_code: e.response && e.response.status_code });
      if (direction === "outgoing") update({ phase: "ringing-remote" });
    });
    session.on("accepted", (e) => {
      trace("accepted");
      report("accepted", entry, { originator: e.originator });
      update({ phase: "in-call", answeredAt: Date.now() });
      stopRingIfNoneRinging();
      const original = referredFrom && sessionsRef.current.get(referredFrom);
      if (original && !original.session.isEnded()) {
        mark("transfer:completed", { key: referredFrom, by: key });
        original.session.terminate();
      }
    });
    session.on("hold", (e) => { trace("hold", { originator: e.originator }); update(holdState()); });
    session.on("unhold", (e) => { trace("unhold", { originator: e.originator }); update(holdState()); });
    session.on("muted", () => update({ muted: true }));
    session.on("unmuted", () => update({ muted: false }));
    session.on("refer", (e) => { acceptRefer(entry, e); });
    const finish = (kind) => (e) => {
      const elsewhere = answeredElsewhere(e);
      trace(kind, { cause: e.cause, originator: e.originator });
      report(kind, entry, { originator: e.originator, cause: e.cause, status_code: e.message && e.message.status_code, elsewhere });
      sessionsRef.current.delete(key);
      stopRingIfNoneRinging();
      if (entry.localStream) entry.localStream.getTracks().forEach((t) => t.stop());
      sync();
      // Nothing to wrap up on a phone whose call another phone took.
      if (entry.callId && !elsewhere) {
        const transfer = entry.view.transfer;
        const transferred = kind === "ended" && transfer && transfer.state === "answered";
        setWrapUp({
          callId: entry.callId, direction: entry.view.direction, remote: entry.view.remote,
          outcome: transferred ? "transferred" : kind === "ended" ? "ended" : e.cause,
          transferredTo: transferred ? transfer.target : null,
        });
      }
    };
    session.on("ended", finish("ended"));
    session.on("failed", finish("failed"));
    // Who asked for this call, when a transfer brought it (Referred-By of the INVITE).
    const referredBy = direction === "incoming" && request && request.getHeader ? request.getHeader("Referred-By") || null : null;
    trace("new", { remote: entry.view.remote, referredFrom, referredBy });
    report("new", entry);
    sync();
    return entry;
  };

  // ---------------------------------------------------------------- the user agent's side
  const onNewSession = (session, originator, request) => {
    if (originator === "remote") {
      const busy = [...sessionsRef.current.values()].some((x) => x.view.phase !== "ringing");
      if (busy && configRef.current.call_waiting === false) {
        session.terminate({ status_code: 486, reason_phrase: "Busy Here" });
        return;
      }
      track(session, "incoming", request);
      if (cb.current.onLookup) cb.current.onLookup(remoteOf(session));
      if (ringerRef.current) ringerRef.current.start();
    } else {
      track(session, "outgoing", request);
    }
  };

  // The user agent is stopping (tab closing, or another tab took the phone).
  const closeAll = () => {
    sessionsRef.current.forEach((entry) => {
      const inCall = entry.view.phase === "in-call";
      report(inCall ? "ended" : "failed", entry, { originator: "local", cause: inCall ? "Terminated" : "Canceled" });
    });
    sessionsRef.current.clear();
    setCalls([]);
  };

  // ---------------------------------------------------------------- actions
  const dial = useCallback(async (target) => {
    const ua = uaRef.current;
    const dest = String(target || "").replace(/[^0-9*#+A-Za-z@.]/g, "");
    setError("");
    if (!dest) return false;
    mark("dial", dest);
    // A click-to-call right after a page load may come while the phone is still registering.
    if (!ua || !(await registeredWithin(ua, REGISTER_WAIT_MS))) { setError("notRegistered"); return false; }
    const stream = await getMic();
    if (!stream) return false;
    holdOthers(null);
    const session = ua.call(sipTarget(dest, configRef.current.sip_domain), {
      mediaStream: stream,
      mediaConstraints: AUDIO_ONLY,
      pcConfig: pcConfig(),
      rtcOfferConstraints: { offerToReceiveAudio: true, offerToReceiveVideo: false },
    });
    const entry = sessionsRef.current.get(session.id);
    if (entry) entry.localStream = stream;
    return true;
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, []);

  const withEntry = (fn) => (key, ...args) => {
    const entry = sessionsRef.current.get(key);
    return entry ? fn(entry, ...args) : undefined;
  };
  const answer = withEntry(async (entry) => {
    setError("");
    const stream = await getMic();
    if (!stream) return false;
    holdOthers(entry);
    entry.localStream = stream;
    entry.session.answer({ mediaStream: stream, mediaConstraints: AUDIO_ONLY, pcConfig: pcConfig() });
    return true;
  });
  const reject = withEntry((entry) => entry.session.terminate({ status_code: 603, reason_phrase: "Decline" }));
  const hangup = withEntry((entry) => entry.session.terminate());
  const toggleHold = withEntry((entry) => {
    if (entry.session.isOnHold().local) entry.session.unhold(); else entry.session.hold();
  });
  // Talk to a call on hold: every other call goes on hold first.
  const swap = withEntry((entry) => {
    holdOthers(entry);
    if (entry.session.isOnHold().local) entry.session.unhold();
  });
  const toggleMute = withEntry((entry) => {
    if (entry.session.isMuted().audio) entry.session.unmute({ audio: true }); else entry.session.mute({ audio: true });
  });
  const dtmf = withEntry((entry, tone) => {
    const transportType = configRef.current.dtmf_transport === "INFO" ? "INFO" : "RFC2833";
    entry.session.sendDTMF(tone, { transportType, duration: 100, interToneGap: 70 });
  });
  // A blind transfer: REFER the other side to `text`, then follow its NOTIFYs (from the
  // other phone, or from a PBX that carries the transfer out itself): ringing, answered
  // (this call then ends) or failed with the cause (this call goes on).
  const transfer = withEntry((entry, text) => {
    const uri = sipTarget(text, configRef.current.sip_domain);
    if (!uri) return false;
    const to = uri.slice(4).split("@")[0];
    const set = (state, cause = "") => {
      mark(`transfer:${state}`, { key: entry.view.key, target: to, cause });
      Object.assign(entry.view, { transfer: { target: to, state, cause } });
      sync();
    };
    const hangUp = () => { if (!entry.session.isEnded()) entry.session.terminate(); };
    setError("");
    set("trying");
    let subscriber = false;
    try {
      subscriber = entry.session.refer(uri, {
        eventHandlers: {
          requestFailed: (e) => set("failed", e.response ? statusLine(e.response) : e.cause),
          progress: () => set("ringing"),
          accepted: () => { set("answered"); hangUp(); },
          failed: (e) => set("failed", statusLine(e.status_line)),
        },
      });
    } catch (err) {
      subscriber = false;
    }
    if (!subscriber) set("failed");
    return true;
  });

  // The call clocks.
  useEffect(() => {
    if (!calls.some((c) => c.phase === "in-call")) return undefined;
    const t = setInterval(() => setNow(Date.now()), 500);
    return () => clearInterval(t);
  }, [calls]);

  // Saving or skipping both end the wrap-up on the server (the agent's presence), with or without a note.
  const saveWrapUp = (note, caseId) => {
    if (wrapUp && cb.current.onWrapUp) {
      cb.current.onWrapUp({ call_id: wrapUp.callId, direction: wrapUp.direction, note: note.trim(), case_id: caseId ? Number(caseId) : null });
    }
    setWrapUp(null);
  };

  return {
    calls, now, error, wrapUp, audioRef, ringerRef,
    onNewSession, closeAll,
    dial, answer, reject, hangup, toggleHold, swap, toggleMute, dtmf, transfer, saveWrapUp,
    skipWrapUp: () => saveWrapUp("", ""),
  };
}
