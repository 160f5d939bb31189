// The agent's own phone identity: extension, PBX address, SIP password and ICE servers
// (TURN credentials), from the API with the user's own session token.
//
// The phone asks for it as soon as it mounts, which is before the tab's session has been
// resumed on the server: registering does not wait for the page's events (the session
// check, the page's loaders, the dashboard's figures). The API checks the token itself.
// The password never sits in the app's state (the server keeps state on disk or in
// Redis): it is kept in memory only. Retries with backoff; no retry when the user has no
// extension or the firm no PBX (the server's config then says why, see softphone.jsx).
import { useEffect, useRef, useState } from "react";
import { browserToken, credentialsRequest, dropEarlyUnless, earlyCredentials, sipConfig, takeEarlyAnswer } from "./early.js";

export function useSipCredentials(credentialsUrl, signedIn) {
  // The answer the page already has (early.js) is in the first render: no render waits for it.
  const [first] = useState(() => {
    const token = browserToken();
    const sip = credentialsUrl && token ? earlyCredentials(credentialsUrl, token) : null;
    return { token, sip };
  });
  const [own, setOwn] = useState(first.sip);
  // The token the current (or last) request was made with; a new sign-in brings a new one.
  const asked = useRef({ token: first.sip ? first.token : null, timer: null, alive: true });

  useEffect(() => {
    const state = asked.current;
    state.alive = true;
    return () => { state.alive = false; clearTimeout(state.timer); };
  }, []);

  const [look, setLook] = useState(0);
  useEffect(() => {
    const state = asked.current;
    const token = browserToken();
    // What the page started for another token (signed out or in as someone else) stops now.
    dropEarlyUnless(token);
    if (!credentialsUrl) return undefined;
    if (!token) {
      // Not signed in in this browser (yet): a sign-in re-runs this effect (signedIn); the
      // token it stores may land a moment after the tab shows as signed in.
      if (!signedIn || look >= 20) return undefined;
      const again = setTimeout(() => setLook((n) => n + 1), 100);
      return () => clearTimeout(again);
    }
    // The same token already asked for (in flight, retrying or answered): nothing to do.
    if (token === state.token) return undefined;
    state.token = token;
    clearTimeout(state.timer);
    const load = (attempt) => {
      // The first ask may already have been made while the page booted (early.js).
      ((attempt === 0 && takeEarlyAnswer(credentialsUrl, token)) || credentialsRequest(credentialsUrl, token))
        .then(({ status, body }) => {
          if (status === 404 || status === 409) return null;
          return status >= 200 && status < 300 ? body : Promise.reject(new Error(`HTTP ${status}`));
        })
        .then((body) => {
          if (!state.alive || state.token !== token || !body) return;
          setOwn(sipConfig(body));
        })
        .catch(() => {
          if (state.alive && state.token === token) state.timer = setTimeout(() => load(attempt + 1), Math.min(30000, 500 * 2 ** attempt));
        });
    };
    load(0);
    return undefined;
  }, [credentialsUrl, signedIn, look]);
  return own;
}
