"""The Reflex wrapper of softphone.jsx, and where it mounts.

The phone is an app wrap: it renders once above the router, so navigating between
pages keeps the same JsSIP user agent, its registration and its calls. Pages only place
a marker (:func:`softphone_slot`) that makes the compiler add that wrap.
"""

from __future__ import annotations

import reflex as rx
from reflex.config import get_config
from reflex_base.components.component import Component

from watheeq_ui.components.softphone.state import SoftphoneState
from watheeq_ui.i18n import t
from watheeq_ui.state.auth import AuthState
from watheeq_ui.state.lang import LangState

JSSIP = "jssip@3.13.8"
_JSX = rx.asset("softphone.jsx", shared=True)
# The modules softphone.jsx imports, linked beside it so its relative imports resolve.
HOOKS = (
    "labels.js", "support.js", "useSipCredentials.js", "tabLock.js", "useTabLeadership.js", "useUserAgent.js", "useCalls.js",
    "early.js", "agent.js",
)
_MODULES = [rx.asset(name, shared=True) for name in HOOKS]
# It imports early.js and softphone.jsx (dynamically: neither joins the app's own chunks).
_PREFETCH = rx.asset("prefetch.jsx", shared=True)
# Inside the theme (20) and the state providers (90/100), outside every page.
APP_WRAP_KEY = (10, "WatheeqSoftphone")


class Softphone(rx.NoSSRComponent):
    """JsSIP user agent, dial pad, incoming-call card, in-call controls, wrap-up prompt."""

    library = _JSX.importable_path
    tag = "Softphone"
    lib_dependencies: list[str] = [JSSIP]

    config: rx.Var[dict]
    command: rx.Var[dict]
    match: rx.Var[dict]
    recent: rx.Var[list]
    cases: rx.Var[list]
    # "en" or "ar": the platform's language switch; the component keeps its own label table.
    lang: rx.Var[str]
    # Whether the server has resumed this tab's session: the phone holds its reports until then.
    signed_in: rx.Var[bool]
    # The user's own extension route: the phone's identity and password, asked with the token.
    credentials_url: rx.Var[str]

    on_call_event: rx.EventHandler[rx.event.passthrough_event_spec(dict)]
    on_registration: rx.EventHandler[rx.event.passthrough_event_spec(dict)]
    on_lookup: rx.EventHandler[rx.event.passthrough_event_spec(str)]
    on_wrap_up: rx.EventHandler[rx.event.passthrough_event_spec(dict)]


class SoftphonePrefetch(rx.Component):
    """Renders nothing. Its module is imported with the app's own (not lazily, as the phone
    is): while the page boots it starts loading the phone's chunk and imports early.js
    (unless the page's head has already, head.py), which asks the API for the signed-in
    agent's credentials, takes the tab lock of that identity and, in the tab that holds it,
    starts the JsSIP user agent; the phone adopts them when it mounts. Whatever of it has
    not been adopted stops (unregisters) once the server signs the tab out."""

    library = _PREFETCH.importable_path
    tag = "SoftphonePrefetch"

    # Set once the server has signed this tab out (AuthState.signed_out).
    signed_out: rx.Var[bool]


def credentials_url() -> str:
    """The API route of the user's own softphone config (the frontend's backend URL)."""
    return f"{get_config().api_url}/api/v1/call-center/extension"


def softphone_root() -> rx.Component:
    """The phone as mounted above the router, for every signed-in user: without an
    extension (or without PBX settings) it says why there is no phone, and what to do.

    The phone itself mounts with the page, before the tab's session is resumed on the
    server (``AuthState.signed_out`` is still False then): it fetches its identity from the
    API with the browser's token and registers at once, in parallel with the session check
    and the page's loaders, not after them. The server's side of it (``load_config``: the
    "no phone" reasons, presence, recent calls) starts once the session is resumed."""
    return rx.fragment(
        SoftphonePrefetch.create(signed_out=AuthState.signed_out),
        rx.cond(
            ~AuthState.signed_out,
            Softphone.create(
                config=SoftphoneState.config,
                command=SoftphoneState.command,
                match=SoftphoneState.match,
                recent=SoftphoneState.recent,
                cases=SoftphoneState.cases,
                lang=LangState.lang,
                signed_in=AuthState.signed_in,
                credentials_url=credentials_url(),
                on_call_event=SoftphoneState.on_call_event,
                on_registration=SoftphoneState.on_registration,
                on_lookup=SoftphoneState.lookup,
                on_wrap_up=SoftphoneState.save_wrap_up,
            ),
        ),
        rx.cond(
            AuthState.signed_in,
            rx.fragment(presence_control(), on_mount=SoftphoneState.load_config, on_unmount=SoftphoneState.clear_config),
        ),
    )


HEARTBEAT_MS = 10_000
_PRESENCE_CHOICES = ("AVAILABLE", "AWAY:BREAK", "AWAY:MEETING", "AWAY:COURT")


def _choice_label(value: str) -> rx.Var:
    status, _, reason = value.partition(":")
    return t(f"away_{reason}") if reason else t("set_available")


def presence_control() -> rx.Component:
    """The agent's Available/Away switch (with the reason) beside the phone, the state the
    server keeps for them, and the tab's heartbeat (services.presence)."""
    state = SoftphoneState.presence
    value = rx.cond(state == "AWAY", "AWAY:" + SoftphoneState.away_reason, rx.cond(state == "AVAILABLE", "AVAILABLE", ""))
    return rx.fragment(
        rx.moment(interval=HEARTBEAT_MS, on_change=SoftphoneState.heartbeat, display="none"),
        rx.cond(
            state != "",
            rx.hstack(
                rx.badge(
                    rx.match(state, *[(s, t(f"ag_{s}")) for s in ("OFFLINE", "AVAILABLE", "RINGING", "ON_CALL", "WRAP_UP", "AWAY")], state),
                    data_testid="presence-state",
                    data_state=state,
                    variant="surface",
                ),
                rx.select.root(
                    rx.select.trigger(placeholder=t("my_state"), data_testid="presence-select", aria_label=t("my_state")),
                    rx.select.content(
                        *[rx.select.item(_choice_label(v), value=v, data_testid=f"presence-{v.replace(':', '-')}") for v in _PRESENCE_CHOICES]
                    ),
                    value=value,
                    on_change=SoftphoneState.set_presence,
                    size="1",
                ),
                position="fixed",
                bottom="32px",
                inset_inline_end="88px",
                z_index="999",
                align="center",
                padding="4px 8px",
                border_radius="8px",
                background=rx.color("gray", 2),
                box_shadow="0 2px 8px rgba(0,0,0,.15)",
                data_testid="presence-control",
            ),
        ),
    )


class _SoftphoneSlot(rx.Fragment):
    """Renders nothing itself; asks the compiler to mount the phone as an app wrap."""

    @staticmethod
    def _get_app_wrap_components() -> dict[tuple[int, str], Component]:
        return {APP_WRAP_KEY: softphone_root()}


def softphone_slot() -> rx.Component:
    return _SoftphoneSlot.create()


def click_to_call(number: rx.Var[str] | str) -> rx.event.EventSpec:
    """The event that makes the phone dial ``number`` (call history, client page, dashboard)."""
    return SoftphoneState.dial(number)


def call_button(number: rx.Var[str], *, label_key: str, test_id: str, size: str = "1", before: list | None = None) -> rx.Component:
    """A button that dials ``number``, shown only to a user with an extension (only they
    have a phone to call from) and only when there is a number; ``before`` runs first."""
    return rx.cond(
        AuthState.has_extension & (number != ""),
        rx.button(
            rx.icon("phone-outgoing", size=14),
            t(label_key),
            on_click=[*(before or []), click_to_call(number)],
            color_scheme="green",
            variant="soft",
            size=size,
            data_testid=test_id,
        ),
    )
