// Imported with the app's own modules (softphone.py mounts it beside the phone), so this
// runs while the page boots, before React has rendered anything. It
//   1. imports early.js, which in a signed-in browser starts the phone's user agent while
//      the page boots (the credentials, the tab lock, JsSIP: see there), unless the page's
//      head has imported it already (head.py);
//   2. starts loading the phone's chunk (softphone.jsx, otherwise fetched only once the
//      phone mounts);
//   3. keeps, for the page's head on the next load, the URL of early.js's chunk and of the
//      chunk this module is in (EARLY_HINT_KEY: no credential). The head imports that chunk
//      only on a page whose own module list names the same chunk as this one: a chunk of an
//      earlier build is never run beside this build's.
// Its component stops (unregisters) whatever early.js started and the phone has not adopted
// once the server signs the tab out.
import { useEffect } from "react";

export const EARLY_HINT_KEY = "watheeq.softphone.early";

const early = typeof window === "undefined" ? null : import("./early.js");

if (early) {
  import("./softphone.jsx").catch(() => {});
  early.then((m) => {
    try {
      window.localStorage.setItem(EARLY_HINT_KEY, JSON.stringify({ from: import.meta.url, early: m.EARLY_URL }));
    } catch (err) { /* no storage */ }
  }, () => {});
}

// Renders nothing: stops what was started while the page booted once the server has
// signed the tab out.
export function SoftphonePrefetch({ signedOut }) {
  useEffect(() => {
    if (!signedOut || !early) return;
    early.then((m) => m.forgetEarly(), () => {});
  }, [signedOut]);
  return null;
}
