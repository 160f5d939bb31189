// Which tab holds the phone, for the component: the tab lock (tabLock.js) as React state.
// The lock the page opened while it booted (early.js) is adopted when it is this
// identity's, so the phone neither asks for it twice nor waits a render for it.
import { useCallback, useEffect, useRef, useState } from "react";
import { openTabLock } from "./tabLock.js";

// role: "none" (not decided yet), "leader" (this tab holds the phone) or "follower".
// onResign() runs the moment another tab takes the phone, before this one re-renders (see
// tabLock.js). adopt(name): the lock already open for `name`, or null.
export function useTabLeadership(name, onResign, adopt) {
  const [role, setRole] = useState("none");
  const [followerView, setFollowerView] = useState(null); // {reg, calls} of the leading tab
  const lockRef = useRef(null);
  const resignRef = useRef(onResign);
  resignRef.current = onResign;
  const adoptRef = useRef(adopt);
  adoptRef.current = adopt;

  useEffect(() => {
    if (!name) return undefined;
    const lock = (adoptRef.current && adoptRef.current(name)) || openTabLock(name);
    lockRef.current = lock;
    lock.attach({
      role: setRole,
      followerView: setFollowerView,
      resign: () => { if (resignRef.current) resignRef.current(); },
    });
    return () => {
      lock.close();
      lockRef.current = null;
      setRole("none");
    };
  }, [name]);

  // The leading tab's registration state and calls, for the tabs that follow it.
  const publishStatus = useCallback((reg) => { if (lockRef.current) lockRef.current.publishStatus(reg); }, []);
  const publishCalls = useCallback((calls) => { if (lockRef.current) lockRef.current.publishCalls(calls); }, []);
  const takeOver = useCallback(() => { if (lockRef.current) lockRef.current.takeOver(); }, []);

  return { role, leader: role === "leader", followerView, takeOver, publishStatus, publishCalls };
}
