// The agent's SIP password and ICE servers (TURN credentials).
//
// They never sit in the app's state (the server keeps state on disk or in Redis): the
// phone asks the API for them with the user's own session token, keeps them in memory
// only, and retries with backoff.
import { useEffect, useState } from "react";

export function useSipCredentials(config) {
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
  return secret;
}
