"""The Reflex wrapper: pinned JsSIP, mounted as one app wrap, wired to the state's handlers."""

from __future__ import annotations

import reflex as rx

from watheeq_ui.components.softphone import softphone_root, softphone_slot
from watheeq_ui.components.softphone.softphone import APP_WRAP_KEY, Softphone


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


def test_phone_renders_for_every_signed_in_user_and_reports_to_the_state():
    rendered = str(softphone_root())
    # Without an extension it still shows, to say why there is no phone.
    assert "signed_in" in rendered and "has_extension" not in rendered
    for prop in ("config:", "command:", "match:", "recent:", "cases:", "lang:", "onCallEvent:", "onRegistration:", "onLookup:", "onWrapUp:"):
        assert prop in rendered
    assert "on_call_event" in rendered and "save_wrap_up" in rendered
    assert "lang_state.lang" in rendered  # the language follows the platform's switch
