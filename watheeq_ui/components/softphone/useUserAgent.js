// The JsSIP user agent of the tab that holds the phone, as React state: useUserAgent adopts
// the one the page started while it booted (early.js) or starts its own (agent.js), and
// turns what it reports into state.
import { useCallback, useEffect, useRef, useState } from "react";
import { startAgent } from "./agent.js";

// active: this tab holds the phone and has its credentials. The handlers are read when
// an event happens, so they may change between renders without restarting the agent:
// onNewSession(session, originator, request), onStop() (the calls are about to go),
// onStatus(reg) (for the other tabs), onRegistration(payload) (for the server).
// adopt(config, secret): the user agent already running for this identity, or null.
export function useUserAgent({ uaRef, active, config, secret, langRef, adopt, onNewSession, onStop, onStatus, onRegistration }) {
  const [reg, setReg] = useState({ state: "idle", reason: "" });
  const [problem, setProblem] = useState(null);
  const handlers = useRef({});
  handlers.current = { onNewSession, onStop, onStatus, onRegistration, adopt };
  const firstRegistration = useRef(true);
  const stopRef = useRef(null);

  useEffect(() => {
    if (!active) return undefined;
    const agent = (handlers.current.adopt && handlers.current.adopt(config, secret)) || startAgent(config, secret);
    uaRef.current = agent.ua;
    agent.attach({
      labels: () => langRef.current,
      status: (state, reasonOf) => {
        const next = { state, reason: reasonOf ? reasonOf(langRef.current) : "" };
        setReg(next);
        if (handlers.current.onStatus) handlers.current.onStatus(next);
      },
      problem: setProblem,
      registration: (payload) => {
        // The page's first registration closes the calls its previous page left open.
        const sent = payload.state === "registered" ? { ...payload, first: firstRegistration.current } : payload;
        if (payload.state === "registered") firstRegistration.current = false;
        if (handlers.current.onRegistration) handlers.current.onRegistration(sent);
      },
      newSession: (session, originator, request) => handlers.current.onNewSession(session, originator, request),
      stopping: () => { if (handlers.current.onStop) handlers.current.onStop(); },
    });
    const { ua } = agent;
    const stop = () => {
      agent.stop();
      if (uaRef.current === ua) uaRef.current = null;
    };
    stopRef.current = stop;
    return () => {
      stopRef.current = null;
      stop();
      // A later user agent (this tab holding the phone again) starts from nothing.
      setReg({ state: "idle", reason: "" });
      setProblem(null);
    };
    // A new UA only when the identity or the PBX changes.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [active, config && config.wss_url, config && config.sip_uri, secret && secret.password]);

  // Stops (and unregisters) the running user agent now, without waiting for a render.
  const stop = useCallback(() => { if (stopRef.current) stopRef.current(); }, []);
  return { reg, problem, stop };
}
