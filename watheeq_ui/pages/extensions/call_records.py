"""The PBX settings page's call-record card (OWNER/ADMIN): where the firm's call records come
from (none, the PBX lab, the UCM6301's API), the UCM's API URL, user, write-only password
and real-time output port, and "Test connection" (login + one page of records) with its
result as a sentence. Kept apart from the SIP settings form (view.py) so that the feed's
health line (services.pbx.feed) can sit next to it.
"""

from __future__ import annotations


import reflex as rx

from services import call_center, db
from services.authz import Permission
from services.errors import DomainError
from services.models import CdrSettingsIn
from services.pbx.settings import test_cdr_connection, update_cdr_settings
from watheeq_ui.components.ui import card, labelled, section_title
from watheeq_ui.error_messages import error_text
from watheeq_ui.i18n import t, tr
from watheeq_ui.state.auth import principal_for_page
from watheeq_ui.state.lang import LangState
from watheeq_ui.state import offloop

API_PASSWORD_FIELD_ID = "cdr-api-password"
_SOURCES = ("none", "lab", "ucm")


class CallRecordsState(rx.State):
    # No API password here: state is pickled to disk or Redis; the field is uncontrolled
    # and reaches the server only as its form's submit argument.
    source: str = "none"
    api_url: str = ""
    api_user: str = ""
    realtime_port: str = ""
    password_set: bool = False
    has_pbx: bool = False
    errors: dict[str, str] = {}
    test_ok: bool = False
    test_message: str = ""
    testing: bool = False

    async def _show(self, principal) -> None:
        pbx = await offloop.call(call_center.get_pbx_settings, principal)
        self.has_pbx = pbx is not None
        if pbx is None:
            return
        self.source = pbx.cdr_source or "none"
        self.api_url, self.api_user = pbx.api_url, pbx.api_user
        self.realtime_port = str(pbx.realtime_port or "")
        self.password_set = pbx.api_password_set

    @rx.event
    async def load(self):
        principal = await principal_for_page(self, Permission.MANAGE_PBX)
        if principal is None:
            return
        self.errors, self.test_message = {}, ""
        await self._show(principal)

    @rx.event
    def set_field(self, name: str, value: str):
        if name in {"source", "api_url", "api_user", "realtime_port"}:
            setattr(self, name, value)

    @rx.event
    async def save(self, form: dict):
        """The form's submit; ``form`` carries the API password, never kept."""
        password = str(form.get("api_password") or "") if isinstance(form, dict) else ""
        principal = await principal_for_page(self, Permission.MANAGE_PBX)
        if principal is None:
            return None
        lang = (await self.get_state(LangState)).lang
        port_text = self.realtime_port.strip()
        if port_text and not port_text.isdigit():
            self.errors = {"realtime_port": error_text(lang, "the real-time output port is between 1024 and 65535")}
            return None
        data = CdrSettingsIn(cdr_source="" if self.source == "none" else self.source, api_url=self.api_url,
                             api_user=self.api_user, api_password=password or None,
                             realtime_port=int(port_text) if port_text else 0)
        try:
            await offloop.call(update_cdr_settings, principal, data=data)
        except DomainError as exc:
            self.errors = {exc.field or "cdr_source": error_text(lang, exc)}
            return None
        self.errors, self.test_message = {}, ""
        await self._show(principal)
        return rx.toast.success(tr(lang, "saved"))

    @rx.event
    async def test(self):
        principal = await principal_for_page(self, Permission.MANAGE_PBX)
        if principal is None:
            return
        lang = (await self.get_state(LangState)).lang
        self.testing, self.test_message = True, ""
        yield

        def run():
            with db.session_scope() as session:
                return test_cdr_connection(session=session, tenant_id=principal.tenant_id, actor=principal)

        try:
            result = await offloop.run(run)
        except DomainError as exc:
            self.testing, self.test_ok, self.test_message = False, False, error_text(lang, exc)
            return
        self.testing, self.test_ok = False, result.ok
        self.test_message = source_message(lang, result.code, result.message)


_CODES = ("ok", "auth_failed", "unreachable", "bad_response", "empty_page", "not_configured")


def source_message(lang: str, code: str | None, message: str | None) -> str:
    """What a CDR source said, for the page: the headline of its code in the page's language,
    then (in English, the language the sources write in) the source's own sentence."""
    headline = tr(lang, f"cdr_test_{code}") if code in _CODES else tr(lang, "cdr_test_failed")
    if lang != "en" or not message:
        return headline
    return f"{headline} {message}"


def _input(label_key: str, name: str, value: rx.Var, hint_key: str | None = None, **props) -> rx.Component:
    return labelled(
        label_key,
        rx.input(value=value, on_change=lambda v: CallRecordsState.set_field(name, v), dir="ltr",
                 data_testid=f"cdr-{name}", **props),
        CallRecordsState.errors.get(name, ""),
        hint_key=hint_key,
    )


def call_records_card() -> rx.Component:
    return card(
        section_title("cdr_settings"),
        rx.text(t("cdr_settings_hint"), size="2", color_scheme="gray"),
        rx.form(
            rx.vstack(
                labelled(
                    "cdr_source",
                    rx.select.root(
                        rx.select.trigger(width="100%", data_testid="cdr-source"),
                        rx.select.content(*[rx.select.item(t(f"cdr_source_{s}"), value=s) for s in _SOURCES]),
                        value=CallRecordsState.source,
                        on_change=lambda v: CallRecordsState.set_field("source", v),
                    ),
                    CallRecordsState.errors.get("cdr_source", ""),
                ),
                rx.cond(
                    CallRecordsState.source == "ucm",
                    rx.vstack(
                        _input("cdr_api_url", "api_url", CallRecordsState.api_url, placeholder="https://192.168.1.10:8089"),
                        rx.grid(
                            _input("cdr_api_user", "api_user", CallRecordsState.api_user, placeholder="cdrapi"),
                            _input("cdr_realtime_port", "realtime_port", CallRecordsState.realtime_port,
                                   hint_key="cdr_realtime_port_hint", inputmode="numeric"),
                            columns="2", spacing="3", width="100%",
                        ),
                        labelled(
                            "cdr_api_password",
                            rx.input(type="password", name="api_password", id=API_PASSWORD_FIELD_ID,
                                     auto_complete="new-password", data_testid="cdr-api_password"),
                            CallRecordsState.errors.get("api_password", ""),
                            hint_key="cdr_api_password_hint",
                        ),
                        rx.cond(CallRecordsState.password_set,
                                rx.badge(t("cdr_api_password_stored"), color_scheme="green", variant="soft",
                                         data_testid="cdr-password-stored")),
                        spacing="3", width="100%",
                    ),
                ),
                rx.hstack(
                    rx.button(rx.icon("save", size=14), t("save"), type="submit", data_testid="cdr-save",
                              disabled=~CallRecordsState.has_pbx),
                    rx.button(rx.icon("plug-zap", size=14), t("cdr_test"), type="button", variant="soft",
                              loading=CallRecordsState.testing, disabled=~CallRecordsState.has_pbx,
                              on_click=CallRecordsState.test, data_testid="cdr-test"),
                    spacing="3",
                ),
                rx.cond(
                    CallRecordsState.test_message != "",
                    rx.cond(
                        CallRecordsState.test_ok,
                        rx.callout(CallRecordsState.test_message, icon="circle-check", color_scheme="green", size="1",
                                   data_testid="cdr-test-result"),
                        rx.callout(CallRecordsState.test_message, icon="triangle-alert", color_scheme="red", size="1",
                                   role="alert", data_testid="cdr-test-result"),
                    ),
                ),
                spacing="3", width="100%", margin_top="0.75rem",
            ),
            on_submit=[CallRecordsState.save, rx.set_value(API_PASSWORD_FIELD_ID, "")],
            width="100%",
        ),
    )
