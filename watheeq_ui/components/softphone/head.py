"""The phone's script in the page's head: it starts the phone before the app's bundle runs.

Without it the phone's first steps (asking the API for the agent's credentials, loading
JsSIP, starting the user agent: early.js) wait until the whole app bundle has been fetched
and evaluated, ~100 ms of a page load. This inline script runs while the head is parsed:
in a browser that is signed in (the session token in localStorage) it asks the API for the
agent's own credentials with that token, and imports early.js's chunk, whose URL
prefetch.jsx kept on an earlier load of the same build. It does so only when the page's own
module list (the ``modulepreload`` links of this build, already in the head) names the chunk
prefetch.jsx was in when it kept that URL: after a new build the script does nothing, and
prefetch.jsx imports early.js as before. early.js takes the answer (once, for the same token
and URL) and drops it from the page.

It holds no credential and logs nothing; the answer, with the SIP password, is in the
page's memory only, as before. Inline scripts are allowed by the production
Content-Security-Policy (deploy/Caddyfile), as for Reflex's own theme script.
"""

from __future__ import annotations

import json

import reflex as rx
from reflex_base.constants.event import Endpoint

# The same keys as early.js and prefetch.jsx (a test reads them there).
TOKEN_KEY = "watheeq_session"
EARLY_HINT_KEY = "watheeq.softphone.early"
HEAD_KEY = "__watheeqSoftphoneHead"
SIP_CREDENTIALS_PATH = "/api/v1/call-center/extension"

# No "<", ">" or "&" in it: it is a text child of a <script> element.
_SCRIPT = """(function () {
  try {
    var hint = JSON.parse(localStorage.getItem(%(hint_key)s) || "null");
    var token = localStorage.getItem(%(token_key)s);
    if (!hint || !token || typeof hint.from !== "string" || typeof hint.early !== "string") return;
    var links = document.querySelectorAll('link[rel="modulepreload"]');
    var built = [].some.call(links, function (link) { return link.href === hint.from; });
    var chunk = new URL(hint.early, location.href);
    if (!built || chunk.origin !== location.origin) return;
    // The phone's timeline (support.js's probe: no credential) starts here.
    var probe = window.__watheeqSoftphone = window.__watheeqSoftphone || { timeline: [], calls: function () { return []; } };
    probe.timeline.push({ type: "head", detail: null, at: Date.now(), t: performance.now() });
    var url = new URL(%(path)s, %(ping)s).toString();
    var ask = new URL(url);
    if (["localhost", "127.0.0.1", "0.0.0.0", "::1"].indexOf(ask.hostname) !== -1) ask.hostname = location.hostname;
    var answer = fetch(ask.toString(), { headers: { Authorization: "Bearer " + token }, cache: "no-store" })
      .then(function (r) {
        return r.ok ? r.json().then(function (body) { return { status: r.status, body: body }; }) : { status: r.status, body: null };
      });
    answer.catch(function () {});
    window[%(head_key)s] = { token: token, url: url, answer: answer };
    import(chunk.toString()).catch(function () {});
  } catch (e) { /* the app's own modules start the phone */ }
})();"""


def script_text() -> str:
    """The script's source, with the backend's URL of this build."""
    text = _SCRIPT % {
        "hint_key": json.dumps(EARLY_HINT_KEY),
        "token_key": json.dumps(TOKEN_KEY),
        "head_key": json.dumps(HEAD_KEY),
        "path": json.dumps(SIP_CREDENTIALS_PATH),
        "ping": json.dumps(Endpoint.PING.get_url()),
    }
    assert not any(c in text for c in "<>&"), "the head script must not contain <, > or &"
    return text


def softphone_head_script() -> rx.Component:
    """The inline <script> for the app's head_components."""
    return rx.el.script(script_text())
