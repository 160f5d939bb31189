"""The Reflex wrapper: pinned JsSIP, mounted as one app wrap, each prop wired to its state."""

from __future__ import annotations

import re
from pathlib import Path

import reflex as rx

from watheeq_ui.components.softphone import SoftphoneState, softphone_root, softphone_slot
from watheeq_ui.components.softphone import softphone as wrapper
from watheeq_ui.components.softphone.softphone import APP_WRAP_KEY, Softphone
from watheeq_ui.state.auth import AuthState
from watheeq_ui.state.lang import LangState

HERE = Path(wrapper.__file__).parent


def _find(component: rx.Component, match) -> rx.Component | None:
    if match(component):
        return component
    for child in [*component.children, *(getattr(component, name, None) for name in ("comp1", "comp2"))]:
        if isinstance(child, rx.Component):
            found = _find(child, match)
            if found is not None:
                return found
    return None


def _phone(component: rx.Component) -> Softphone:
    """The Softphone inside ``softphone_root()`` (under its condition)."""
    return _find(component, lambda c: isinstance(c, Softphone))


def _server_side(component: rx.Component) -> rx.Component:
    """The element whose mount starts the phone's server side (load_config)."""
    return _find(component, lambda c: "on_mount" in c.event_triggers)


def _handler(phone: Softphone, trigger: str):
    chain = phone.event_triggers[trigger]
    [spec] = chain.events
    return spec


def test_slot_mounts_the_phone_above_the_router_as_one_app_wrap():
    page_a = rx.box(softphone_slot())
    page_b = rx.vstack(rx.text("history"), softphone_slot())
    wraps_a = page_a._get_all_app_wrap_components()
    wraps_b = page_b._get_all_app_wrap_components()
    assert APP_WRAP_KEY in wraps_a and APP_WRAP_KEY in wraps_b
    # Every page asks for the same key, so the compiler mounts exactly one phone.
    assert str(wraps_a[APP_WRAP_KEY]) == str(wraps_b[APP_WRAP_KEY])
    assert str(softphone_slot()) == "jsx(Fragment,{},)"


def test_phone_is_a_client_only_component_with_jssip_pinned():
    assert issubclass(Softphone, rx.NoSSRComponent)
    assert Softphone.lib_dependencies == ["jssip@3.13.8"]
    assert Softphone.library.endswith("softphone.jsx")


def test_each_phone_event_calls_its_state_handler_with_the_phones_payload():
    phone = _phone(softphone_root())
    assert phone is not None
    wiring = {
        "on_call_event": SoftphoneState.on_call_event,
        "on_registration": SoftphoneState.on_registration,
        "on_lookup": SoftphoneState.lookup,
        "on_wrap_up": SoftphoneState.save_wrap_up,
    }
    assert set(phone.event_triggers) >= set(wiring)
    for trigger, handler in wiring.items():
        spec = _handler(phone, trigger)
        assert spec.handler.fn is handler.fn, trigger
        # The one argument the component passes (a call event, a number...) reaches the handler.
        [(param, value)] = spec.args
        assert str(value) == "_ev_0", (trigger, str(value))
        assert str(param) in ("payload", "number"), trigger


def test_the_server_side_of_the_phone_starts_and_ends_with_the_signed_in_session():
    # The phone registers before the session is resumed; its config, presence and recent
    # calls are loaded once the tab is signed in, and dropped at sign-out.
    root = softphone_root()
    side = _server_side(root)
    assert side is not None and not isinstance(side, Softphone)
    for trigger, handler in {"on_mount": SoftphoneState.load_config, "on_unmount": SoftphoneState.clear_config}.items():
        spec = _handler(side, trigger)
        assert spec.handler.fn is handler.fn, trigger
        assert spec.args == (), trigger
    assert str(AuthState.signed_in) in str(root)


def test_each_phone_prop_reads_its_state_var():
    phone = _phone(softphone_root())
    wiring = {
        "config": SoftphoneState.config,
        "command": SoftphoneState.command,
        "match": SoftphoneState.match,
        "recent": SoftphoneState.recent,
        "cases": SoftphoneState.cases,
        "lang": LangState.lang,
        "signed_in": AuthState.signed_in,
    }
    for prop, var in wiring.items():
        assert str(getattr(phone, prop)) == str(var), prop
    # Its own credentials route on the backend, asked with the browser's token.
    assert str(phone.credentials_url).strip('"').endswith("/api/v1/call-center/extension")


def test_the_phone_is_shown_to_every_signed_in_user_whatever_their_extension():
    rendered = str(softphone_root())
    # Mounted until the server has signed the tab out (so it may register while a new tab's
    # session is being resumed); without an extension it still shows, to say why there is no phone.
    assert str(AuthState.signed_out) in rendered
    assert "has_extension" not in rendered


def _jsx_props() -> set[str]:
    source = (HERE / "softphone.jsx").read_text()
    match = re.search(r"export function Softphone\(\{(.*?)\}\)", source, re.S)
    assert match, "softphone.jsx exports no Softphone({...}) component"
    return {name.strip() for name in match.group(1).split(",") if name.strip()}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def test_every_prop_the_wrapper_passes_is_one_the_component_reads_and_the_other_way_round():
    passed = {_camel(p) for p in ("config", "command", "match", "recent", "cases", "lang", "signed_in", "credentials_url")}
    passed |= {_camel(t) for t in ("on_call_event", "on_registration", "on_lookup", "on_wrap_up")}
    assert _jsx_props() == passed
    rendered = str(softphone_root())
    for prop in passed:
        assert f"{prop}:" in rendered, prop


def test_every_module_the_component_imports_is_linked_beside_it():
    # softphone.jsx is served from the app's external assets: a module it imports that is
    # not linked there breaks the frontend build.
    seen, todo = set(), ["softphone.jsx"]
    while todo:
        name = todo.pop()
        for imported in re.findall(r'from "\./([^"]+)"', (HERE / name).read_text()):
            if imported not in seen:
                seen.add(imported)
                todo.append(imported)
    assert seen == set(wrapper.HOOKS)
    for name in wrapper.HOOKS:
        assert (HERE / name).exists(), name


def test_the_modules_prefetch_imports_are_linked_beside_it_and_early_js_imports_no_app_chunk():
    # prefetch.jsx imports early.js and the phone dynamically (neither joins the app's own
    # chunks); early.js must not import React or anything of the app: the page's head runs
    # its chunk before the app's bundle.
    prefetch = (HERE / "prefetch.jsx").read_text()
    assert set(re.findall(r'import\("\./([^"]+)"\)', prefetch)) == {"early.js", "softphone.jsx"}
    assert re.findall(r'from "\./', prefetch) == []
    seen, todo = set(), ["early.js"]
    while todo:
        name = todo.pop()
        for imported in re.findall(r'from "([^"]+)"', (HERE / name).read_text()):
            if imported.startswith("./") and imported[2:] not in seen:
                seen.add(imported[2:])
                todo.append(imported[2:])
            elif not imported.startswith("./"):
                assert imported in ("jssip", "$/env.json"), (name, imported)
    assert seen <= set(wrapper.HOOKS), seen


def test_the_head_script_is_in_every_pages_head_and_shares_its_keys_with_the_phones_modules():
    from watheeq_ui.components.softphone import head

    text = head.script_text()
    assert not set("<>&") & set(text)
    early = (HERE / "early.js").read_text()
    prefetch = (HERE / "prefetch.jsx").read_text()
    assert f'export const TOKEN_KEY = "{head.TOKEN_KEY}";' in early
    assert f'export const SIP_CREDENTIALS_PATH = "{head.SIP_CREDENTIALS_PATH}";' in early
    assert f'const HEAD_KEY = "{head.HEAD_KEY}";' in early
    assert f'export const EARLY_HINT_KEY = "{head.EARLY_HINT_KEY}";' in prefetch
    # The credentials URL the way early.js builds it (env.json's PING is the backend's /ping).
    assert '/ping").toString()' in text and "Bearer " in text
    from watheeq_ui.watheeq_ui import app

    assert any(str(c) == str(head.softphone_head_script()) for c in app.head_components)
