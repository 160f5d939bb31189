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
import { credentialsRequest, takeEarlyAnswer } from "./prefetch.jsx";

const TOKEN_KEY = "watheeq_session";

export function useSipCredentials(credentialsUrl, signedIn) {
  const [own, setOwn] = useState(null);
  // The token the current (or last) request was made with; a new sign-in brings a new one.
  const asked = useRef({ token: null, timer: null, alive: true });

  useEffect(() => {
    const state = asked.current;
    state.alive = true;
    return () => { state.alive = false; clearTimeout(state.timer); };
  }, []);

  const [look, setLook] = useState(0);
  useEffect(() => {
    const state = asked.current;
    const token = window.localStorage.getItem(TOKEN_KEY) || "";
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
      // The first ask may already have been made while the page booted (prefetch.jsx).
      ((attempt === 0 && takeEarlyAnswer(credentialsUrl, token)) || credentialsRequest(credentialsUrl, token))
        .then(({ status, body }) => {
          if (status === 404 || status === 409) return null;
          return status >= 200 && status < 300 ? body : Promise.reject(new Error(`HTTP ${status}`));
        })
        .then((body) => {
          if (!state.alive || state.token !== token || !body) return;
          setOwn({
            wss_url: body.wss_url, sip_uri: body.sip_uri, sip_domain: body.sip_domain,
            authorization_user: body.authorization_user, display_name: body.display_name,
            extension: body.extension, dtmf_transport: "RFC2833",
            password: body.password, ice_servers: body.ice_servers || [],
          });
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
