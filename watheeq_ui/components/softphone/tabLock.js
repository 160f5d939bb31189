// Only one tab per user holds the phone (registers and rings): the Web Locks API picks it.
// The other tabs follow its state through a BroadcastChannel, get the lock when it closes,
// or take it over on request.
//
// Plain JavaScript, no React: early.js opens the lock while the page boots (before React
// has rendered anything) and useTabLeadership.js adopts it; or the hook opens its own.
import { mark } from "./support.js";

// A tab that has not got the lock this soon says it follows another one.
const FOLLOWER_AFTER_MS = 150;

const noSink = { role() {}, followerView() {}, resign() {} };

// The lock named `name` (one per SIP identity). role: "none" (not decided yet), "leader"
// (this tab holds the phone) or "follower". The sink hears of every change:
//   role(role), followerView({reg, calls} of the leading tab),
//   resign(): another tab takes the phone, before this one re-renders: its user agent must
//     unregister before the new holder registers the same SIP instance, or that late
//     un-REGISTER would remove the new holder's binding.
// attach(sink) replaces the sink and tells it the current role and view.
export function openTabLock(name) {
  let sink = noSink;
  // Told first of each role, whoever the sink is: the page's own start of the user agent
  // (early.js) until the phone has adopted that too.
  const watchers = new Set();
  let closed = false;
  let released = null;
  let waiting = null;
  let status = { state: "idle", reason: "" };
  const channel = new BroadcastChannel(name);
  const lock = {
    name,
    role: "none",
    followerView: null,
    attach(next) {
      sink = next || noSink;
      if (lock.role !== "none") sink.role(lock.role);
      if (lock.followerView) sink.followerView(lock.followerView);
    },
    // The leading tab's registration state and calls, for the tabs that follow it.
    publishStatus(reg) {
      status = reg;
      if (lock.role === "leader" && !closed) channel.postMessage({ type: "status", reg });
    },
    publishCalls(calls) {
      if (lock.role === "leader" && !closed) channel.postMessage({ type: "calls", calls });
    },
    watch(fn) {
      watchers.add(fn);
      return () => watchers.delete(fn);
    },
    takeOver() {},
    close() {
      if (closed) return;
      closed = true;
      watchers.clear();
      clearTimeout(undecided);
      lock.role = "none";
      sink = noSink;
      if (waiting) waiting.abort();
      if (released) released();
      channel.close();
    },
  };
  const become = (next) => {
    lock.role = next;
    watchers.forEach((fn) => fn(next));
    sink.role(next);
    if (next === "follower") {
      mark("reg:follower", "");
      status = { state: "follower", reason: "" };
      channel.postMessage({ type: "status", reg: status });
    }
  };
  const view = (patch) => {
    lock.followerView = { ...(lock.followerView || {}), ...patch };
    sink.followerView(lock.followerView);
  };
  channel.onmessage = (m) => {
    const msg = m.data || {};
    const leading = lock.role === "leader";
    // Another follower's "follower" says nothing about the tab that holds the phone.
    if (msg.type === "status" && !leading && msg.reg && msg.reg.state !== "follower") view({ reg: msg.reg });
    if (msg.type === "calls" && !leading) view({ calls: msg.calls });
    if (msg.type === "hello" && leading) channel.postMessage({ type: "status", reg: status });
  };

  let undecided = null;
  if (!navigator.locks) {
    become("leader");
    return lock;
  }
  const acquire = (steal) => {
    waiting = steal ? null : new AbortController();
    return navigator.locks.request(name, steal ? { steal: true } : { signal: waiting.signal }, () => {
      if (closed) return undefined;
      mark("lock:leader");
      become("leader");
      return new Promise((resolve) => { released = resolve; });
    }).catch(() => {}).finally(() => {
      const wasLeader = lock.role === "leader";
      // Another tab took the phone: follow it, and queue for the lock again so this tab
      // gets the phone back when that one closes.
      if (wasLeader && !closed) {
        sink.resign();
        become("follower");
        acquire(false);
        channel.postMessage({ type: "hello" });
      }
    });
  };
  lock.takeOver = () => { if (closed) return; if (waiting) waiting.abort(); acquire(true); };
  acquire(false);
  channel.postMessage({ type: "hello" });
  undecided = setTimeout(() => { if (lock.role !== "leader" && !closed) become("follower"); }, FOLLOWER_AFTER_MS);
  return lock;
}
