// The agent's desk phone in the browser: one JsSIP user agent, mounted once above the
// router (an app wrap), so page navigation never drops a registration or a call.
//
// Python owns the data (config, client matches, recent calls) and the call log; the hooks
// own the SIP side (credentials, which tab holds the phone, the user agent, the calls) and
// report every call event through onCallEvent. This component only renders them.
import { useEffect, useRef, useState } from "react";
import { labelsFor } from "./labels.js";
import { liveAndHeld, useCalls } from "./useCalls.js";
import { adoptEarlyAgent, adoptEarlyLock, lockName, stopEarly } from "./early.js";
import { useSipCredentials } from "./useSipCredentials.js";
import { useTabLeadership } from "./useTabLeadership.js";
import { useUserAgent } from "./useUserAgent.js";

const DIAL_KEYS = ["1", "2", "3", "4", "5", "6", "7", "8", "9", "*", "0", "#"];

function fmtTime(s) {
  const m = Math.floor(s / 60);
  return `${m}:${String(s % 60).padStart(2, "0")}`;
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
.wq-sp-held{border-top:1px solid var(--gray-6,#ddd);margin-top:8px;padding-top:6px}
.wq-sp-held-row{display:flex;align-items:center;gap:6px;margin:4px 0}
.wq-sp-held-row>span{flex:1}
`;

const DOT = {
  idle: "#9ca3af", registering: "#f59e0b", registered: "#16a34a", failed: "#dc2626",
  disconnected: "#dc2626", follower: "#3b82f6",
};

export function Softphone({
  config, command, match, recent, cases, lang, signedIn, credentialsUrl,
  onCallEvent, onRegistration, onLookup, onWrapUp,
}) {
  const [open, setOpen] = useState(false);
  const [number, setNumber] = useState("");
  const [transferTo, setTransferTo] = useState("");
  const [note, setNote] = useState("");
  const [caseId, setCaseId] = useState("");
  const lastCommand = useRef(null);
  const L = labelsFor(lang);
  // The user agent's handlers outlive renders: they read the language at the time of the event.
  const langRef = useRef(L);
  langRef.current = L;

  // The phone's identity and password come from the API (useSipCredentials), as soon as the
  // phone mounts; `config` (the server's state) only says why there is no phone.
  const sip = useSipCredentials(credentialsUrl, signedIn);
  const enabled = !!(sip && sip.wss_url && sip.password);
  // The phone may register before the server has resumed this tab's session: what it
  // reports (registration, call events) waits until the session is known, in order.
  const signedInRef = useRef(signedIn);
  signedInRef.current = signedIn;
  const pending = useRef([]);
  const toServer = (fn) => (payload) => {
    if (!fn) return;
    if (signedInRef.current) fn(payload);
    else pending.current.push([fn, payload]);
  };
  useEffect(() => {
    if (!signedIn || !pending.current.length) return;
    const queued = pending.current;
    pending.current = [];
    queued.forEach(([fn, payload]) => fn(payload));
  }, [signedIn]);
  // The page may have started all of it while it booted (early.js): the phone adopts
  // that tab lock and that user agent (one REGISTER per page load), and stops whatever of it
  // it has not adopted when it goes (signed out).
  useEffect(() => () => stopEarly(), []);
  const stopAgent = useRef(null);
  const onResign = () => {
    stopEarly();
    if (stopAgent.current) stopAgent.current();
  };
  const tabs = useTabLeadership(enabled ? lockName(sip) : "", onResign, adoptEarlyLock);
  const active = enabled && tabs.leader;
  const uaRef = useRef(null);
  const phone = useCalls({ uaRef, active, config: sip, secret: sip, callbacks: { onCallEvent: toServer(onCallEvent), onLookup, onWrapUp }, publishCalls: tabs.publishCalls });
  const agent = useUserAgent({
    uaRef, active, config: sip, secret: sip, langRef, adopt: adoptEarlyAgent,
    onNewSession: phone.onNewSession, onStop: phone.closeAll, onStatus: tabs.publishStatus, onRegistration: toServer(onRegistration),
  });
  stopAgent.current = agent.stop;
  const { calls, now, wrapUp } = phone;

  // A new wrap-up starts with an empty note and no case.
  useEffect(() => { setNote(""); setCaseId(""); }, [wrapUp]);

  const openIf = (result) => { Promise.resolve(result).then((ok) => { if (ok) setOpen(true); }); };
  const dial = (target) => openIf(phone.dial(target));
  const answer = (key) => openIf(phone.answer(key));

  // Commands from Python (click-to-call) run once per sequence number.
  useEffect(() => {
    if (!command || !command.seq || lastCommand.current === command.seq) return;
    lastCommand.current = command.seq;
    if (command.op === "dial") { setNumber(command.target || ""); setOpen(true); dial(command.target); }
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [command]);

  // Matched client as the number is typed.
  useEffect(() => {
    if (!enabled || !onLookup) return undefined;
    const t = setTimeout(() => onLookup(number), 250);
    return () => clearTimeout(t);
    // eslint-disable-next-line react-hooks/exhaustive-deps
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

  const { live, held } = liveAndHeld(calls);
  const incoming = calls.filter((c) => c.direction === "incoming" && c.phase === "ringing");
  const leader = tabs.leader;
  const reg = tabs.role === "leader" ? agent.reg : tabs.role === "follower" ? { state: "follower", reason: "" } : { state: "idle", reason: "" };
  const followerView = tabs.followerView;
  const problem = agent.problem;
  const regLabel = (r) => ({
    idle: L.offline, registering: L.connecting, registered: `${L.ready} · ${sip.extension}`,
    failed: L.regFailed, disconnected: L.disconnected, follower: L.follower,
  }[r.state] || r.state);
  // A follower says so (and offers to take over), with the leading tab's state after it:
  // showing that state as its own would pass this tab off as the registered one.
  const leaderReg = followerView && followerView.reg;
  const shownReg = leader || reg.state !== "follower" ? reg : { state: "follower", reason: leaderReg ? regLabel(leaderReg) : "" };
  const statusText = regLabel(shownReg);
  // Only the tab that holds the phone knows why it is not registered.
  const problemText = leader && problem && shownReg.state !== "registered" ? L.problem[problem.key](problem) : "";
  const errorText = phone.error ? (L[phone.error] || phone.error) : "";
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
      <audio ref={phone.audioRef} autoPlay data-testid="softphone-remote-audio" />
      <button type="button" className="wq-sp-fab" aria-label={`${L.phone}: ${statusText}`} title={problemText || statusText} data-testid="softphone-toggle" data-state={shownReg.state} onClick={() => setOpen(!open)}>
        ☎
        <span className="wq-sp-dot" style={{ background: DOT[shownReg.state] || DOT.idle }} />
      </button>

      {incoming.map((c) => {
        const m = matchFor(c.remote);
        return (
          <div key={c.key} className="wq-sp-card" role="alertdialog" data-testid="softphone-incoming" dir={dir} lang={lang}>
            <div className="wq-sp-muted">{live ? L.callWaiting : L.incomingCall}{phone.ringerRef.current && !phone.ringerRef.current.canPlay() ? ` · ${L.enableRingtone}` : ""}</div>
            <div style={{ fontSize: 20, fontWeight: 600 }} dir="ltr" data-testid="softphone-incoming-number">{c.remote}</div>
            {m ? <a href={`/clients/${m.client_id}`} data-testid="softphone-incoming-client">{m.name}</a> : <div className="wq-sp-muted">{L.unknownCaller}</div>}
            <div className="wq-sp-row">
              <button type="button" className="wq-sp-btn wq-sp-green" data-testid="softphone-answer" onClick={() => answer(c.key)}>{L.answer}</button>
              <button type="button" className="wq-sp-btn wq-sp-red" data-testid="softphone-reject" onClick={() => phone.reject(c.key)}>{L.reject}</button>
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
              <button type="button" className="wq-sp-btn" data-testid="softphone-take-over" onClick={tabs.takeOver}>{L.takeOver}</button>
            </div>
          ) : null}
          {problemText ? <div className="wq-sp-err" role="status" data-testid="softphone-problem" data-problem={problem.key}>{problemText}</div> : null}
          {errorText ? <div className="wq-sp-err" data-testid="softphone-error">{errorText}</div> : null}

          {live ? (
            <div data-testid="softphone-call" data-phase={live.phase} data-remote={live.remote}>
              <div style={{ fontSize: 18, fontWeight: 600 }} dir="ltr">{live.remote}</div>
              {matchFor(live.remote) ? <div>{matchFor(live.remote).name}</div> : null}
              <div className="wq-sp-muted" data-testid="softphone-call-state">
                {live.phase === "calling" ? L.calling : live.phase === "ringing-remote" ? L.ringing : live.held ? L.onHold : L.inCall}
                {live.answeredAt ? ` · ${fmtTime(Math.max(0, Math.floor((now - live.answeredAt) / 1000)))}` : ""}
              </div>
              {live.transfer ? (
                <div className={live.transfer.state === "failed" ? "wq-sp-err" : "wq-sp-muted"} role="status" data-testid="softphone-transfer-status" data-state={live.transfer.state}>
                  {live.transfer.state === "failed" ? L.transferFailedTo(live.transfer.target, live.transfer.cause || L.unknownReason)
                    : live.transfer.state === "answered" ? L.transferAnswered(live.transfer.target)
                      : live.transfer.state === "ringing" ? L.transferRinging(live.transfer.target) : L.transferTrying(live.transfer.target)}
                </div>
              ) : null}
              {live.phase === "in-call" ? (
                <>
                  <div className="wq-sp-row">
                    <button type="button" className={`wq-sp-btn${live.muted ? " on" : ""}`} data-testid="softphone-mute" onClick={() => phone.toggleMute(live.key)}>{live.muted ? L.unmute : L.mute}</button>
                    <button type="button" className={`wq-sp-btn${live.held ? " on" : ""}`} data-testid="softphone-hold" onClick={() => phone.toggleHold(live.key)}>{live.held ? L.resume : L.hold}</button>
                  </div>
                  <div className="wq-sp-pad">
                    {DIAL_KEYS.map((k) => <button type="button" key={k} data-testid={`softphone-dtmf-${k}`} onClick={() => phone.dtmf(live.key, k)}>{k}</button>)}
                  </div>
                  <div className="wq-sp-row">
                    <input className="wq-sp-input" style={{ fontSize: 14 }} placeholder={L.transferTo} dir="ltr" value={transferTo} onChange={(e) => setTransferTo(e.target.value)} data-testid="softphone-transfer-input" />
                    <button type="button" className="wq-sp-btn" onClick={() => { if (phone.transfer(live.key, transferTo)) setTransferTo(""); }} data-testid="softphone-transfer">{L.transfer}</button>
                  </div>
                </>
              ) : null}
              <button type="button" className="wq-sp-btn wq-sp-red" style={{ width: "100%" }} data-testid="softphone-hangup" onClick={() => phone.hangup(live.key)}>{L.hangUp}</button>
              {held.length ? (
                <div className="wq-sp-held" data-testid="softphone-held-calls">
                  <div className="wq-sp-muted">{L.heldCalls}</div>
                  {held.map((c) => (
                    <div key={c.key} className="wq-sp-held-row" data-testid="softphone-held-call" data-remote={c.remote}>
                      <span dir="ltr">{c.remote}{matchFor(c.remote) ? ` · ${matchFor(c.remote).name}` : ""}</span>
                      {c.phase === "in-call" ? <button type="button" className="wq-sp-btn" data-testid="softphone-swap" onClick={() => phone.swap(c.key)}>{L.swap}</button> : null}
                      <button type="button" className="wq-sp-btn wq-sp-red" data-testid="softphone-held-hangup" onClick={() => phone.hangup(c.key)}>{L.hangUp}</button>
                    </div>
                  ))}
                </div>
              ) : null}
            </div>
          ) : wrapUp ? (
            <div data-testid="softphone-wrapup">
              <div style={{ fontWeight: 600 }}>{L.afterCall(wrapUp.remote)}</div>
              <div className={["ended", "transferred"].includes(wrapUp.outcome) ? "wq-sp-muted" : "wq-sp-err"} data-testid="softphone-outcome" data-outcome={wrapUp.outcome}>
                {wrapUp.outcome === "ended" ? L.callEnded : wrapUp.outcome === "transferred" ? L.transferredTo(wrapUp.transferredTo) : L.notConnected(wrapUp.outcome || L.unknownReason)}
              </div>
              <textarea className="wq-sp-input" style={{ fontSize: 14, minHeight: 60 }} placeholder={L.note} value={note} onChange={(e) => setNote(e.target.value)} data-testid="softphone-wrapup-note" />
              {cases && cases.length ? (
                <select className="wq-sp-input" style={{ fontSize: 14 }} value={caseId} onChange={(e) => setCaseId(e.target.value)} data-testid="softphone-wrapup-case">
                  <option value="">{L.noCase}</option>
                  {cases.map((c) => <option key={c.id} value={String(c.id)}>{c.title}</option>)}
                </select>
              ) : null}
              <div className="wq-sp-row">
                <button type="button" className="wq-sp-btn wq-sp-green" data-testid="softphone-wrapup-save" onClick={() => phone.saveWrapUp(note, caseId)}>{L.save}</button>
                <button type="button" className="wq-sp-btn" onClick={phone.skipWrapUp} data-testid="softphone-wrapup-skip">{L.skip}</button>
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
