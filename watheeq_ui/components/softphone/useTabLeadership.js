// Only one tab per user holds the phone (registers and rings): the Web Locks API picks it.
// The other tabs follow its state through a BroadcastChannel, get the lock when it closes,
// or take it over on request.
import { useCallback, useEffect, useRef, useState } from "react";
import { mark } from "./support.js";

// A tab that has not got the lock this soon says it follows another one.
const FOLLOWER_AFTER_MS = 150;

// role: "none" (not decided yet), "leader" (this tab holds the phone) or "follower".
// onResign() runs the moment another tab takes the phone, before this one re-renders: its
// user agent must unregister before the new holder registers the same SIP instance, or
// that late un-REGISTER would remove the new holder's binding.
export function useTabLeadership(name, onResign) {
  const [role, setRole] = useState("none");
  const [followerView, setFollowerView] = useState(null); // {reg, calls} of the leading tab
  const roleRef = useRef("none");
  const channelRef = useRef(null);
  const statusRef = useRef({ state: "idle", reason: "" });
  const takeOverRef = useRef(null);
  const resignRef = useRef(onResign);
  resignRef.current = onResign;

  useEffect(() => {
    if (!name) return undefined;
    const channel = new BroadcastChannel(name);
    channelRef.current = channel;
    const become = (next) => {
      roleRef.current = next;
      setRole(next);
      if (next === "follower") {
        mark("reg:follower", "");
        statusRef.current = { state: "follower", reason: "" };
        channel.postMessage({ type: "status", reg: statusRef.current });
      }
    };
    channel.onmessage = (m) => {
      const msg = m.data || {};
      const leading = roleRef.current === "leader";
      // Another follower's "follower" says nothing about the tab that holds the phone.
      if (msg.type === "status" && !leading && msg.reg && msg.reg.state !== "follower") setFollowerView((v) => ({ ...(v || {}), reg: msg.reg }));
      if (msg.type === "calls" && !leading) setFollowerView((v) => ({ ...(v || {}), calls: msg.calls }));
      if (msg.type === "hello" && leading) channel.postMessage({ type: "status", reg: statusRef.current });
    };

    if (!navigator.locks) {
      become("leader");
      return () => { channel.close(); channelRef.current = null; roleRef.current = "none"; };
    }
    let released = null;
    let waiting = null;
    let unmounted = false;
    const acquire = (steal) => {
      waiting = steal ? null : new AbortController();
      return navigator.locks.request(name, steal ? { steal: true } : { signal: waiting.signal }, () => {
        become("leader");
        return new Promise((resolve) => { released = resolve; });
      }).catch(() => {}).finally(() => {
        const wasLeader = roleRef.current === "leader";
        // Another tab took the phone: follow it, and queue for the lock again so this tab
        // gets the phone back when that one closes.
        if (wasLeader && !unmounted) {
          if (resignRef.current) resignRef.current();
          become("follower");
          acquire(false);
          channel.postMessage({ type: "hello" });
        }
      });
    };
    takeOverRef.current = () => { if (waiting) waiting.abort(); acquire(true); };
    acquire(false);
    channel.postMessage({ type: "hello" });
    const undecided = setTimeout(() => { if (roleRef.current !== "leader") become("follower"); }, FOLLOWER_AFTER_MS);
    return () => {
      unmounted = true;
      clearTimeout(undecided);
      roleRef.current = "none";
      setRole("none");
      if (waiting) waiting.abort();
      if (released) released();
      takeOverRef.current = null;
      channel.close();
      channelRef.current = null;
    };
  }, [name]);

  // The leading tab's registration state and calls, for the tabs that follow it.
  const publishStatus = useCallback((reg) => {
    statusRef.current = reg;
    if (roleRef.current === "leader" && channelRef.current) channelRef.current.postMessage({ type: "status", reg });
  }, []);
  const publishCalls = useCallback((calls) => {
    if (roleRef.current === "leader" && channelRef.current) channelRef.current.postMessage({ type: "calls", calls });
  }, []);
  const takeOver = useCallback(() => { if (takeOverRef.current) takeOverRef.current(); }, []);

  return { role, leader: role === "leader", followerView, takeOver, publishStatus, publishCalls };
}
