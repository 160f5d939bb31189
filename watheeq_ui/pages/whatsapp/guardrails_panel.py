"""The WhatsApp page's guardrails against bans: a temporary ban (why, until when: sending is
paused), first contacts sent today against the firm's daily cap, and for owners/admins the cap
itself (services.whatsapp.guardrails)."""

from __future__ import annotations

import reflex as rx
from pydantic import ValidationError

from services import db
from services.authz import Permission
from services.errors import DomainError
from services.models import WhatsappGuardrailsUpdate
from services.whatsapp import guardrails

from watheeq_ui.components.ui import card, section_title
from watheeq_ui.error_messages import error_text
from watheeq_ui.i18n import t, t_fmt, tr
from watheeq_ui.pages.whatsapp.state import WhatsappState
from watheeq_ui.state import offloop
from watheeq_ui.state.auth import AuthState, principal_for_page
from watheeq_ui.state.lang import LangState


class GuardrailsState(WhatsappState):
    cap_draft: str = ""
    cap_error: str = ""
    cap_saved: bool = False

    @rx.event
    def set_cap_draft(self, value: str):
        self.cap_draft = value
        self.cap_error = ""
        self.cap_saved = False

    @rx.event
    async def set_reject_calls(self, value: bool):
        principal = await principal_for_page(self, Permission.LINK_WHATSAPP)
        if principal is None:
            return None
        data = WhatsappGuardrailsUpdate(reject_calls=bool(value))

        def save() -> None:
            with db.session_scope() as session:
                guardrails.set_first_contact_cap(session=session, tenant_id=principal.tenant_id, actor=principal, data=data)

        await offloop.run(save)
        self.reject_calls = bool(value)
        return None

    @rx.event
    async def save_cap(self):
        principal = await principal_for_page(self, Permission.LINK_WHATSAPP)
        if principal is None:
            return None
        lang = (await self.get_state(LangState)).lang
        try:
            data = WhatsappGuardrailsUpdate(first_contact_daily_cap=int(self.cap_draft.strip()))
        except (ValueError, ValidationError):
            self.cap_error = tr(lang, "wa_cap_invalid")
            return None
        def save() -> int:
            with db.session_scope() as session:
                return guardrails.set_first_contact_cap(session=session, tenant_id=principal.tenant_id, actor=principal, data=data)

        try:
            cap = await offloop.run(save)
        except DomainError as exc:
            self.cap_error = error_text(lang, exc)
            return None
        self.first_contact_cap = cap
        self.cap_draft = ""
        self.cap_saved = True
        return None


def ban_reason(code: rx.Var) -> rx.Var:
    return rx.match(code, *[(name, t(f"wa_ban_{name}")) for name in guardrails.BAN_REASONS], code)


def ban_notice() -> rx.Component:
    """Sending paused by a temporary ban: whatsmeow's reason code, what it means, and its end."""
    return rx.callout(
        rx.vstack(
            rx.text(t_fmt("wa_ban_paused", x=WhatsappState.ban_until), weight="medium"),
            rx.text(WhatsappState.ban_code, ": ", ban_reason(WhatsappState.ban_code), size="1", dir="ltr"),
            spacing="1",
        ),
        icon="ban",
        color_scheme="red",
        size="1",
        data_testid="wa-ban",
        data_code=WhatsappState.ban_code,
    )


def guardrails_panel() -> rx.Component:
    return card(
        section_title("wa_guardrails"),
        rx.vstack(
            rx.cond(WhatsappState.ban_until != "", ban_notice()),
            rx.text(t("wa_guardrails_pace"), size="2", color_scheme="gray"),
            rx.text(
                t_fmt("wa_first_contacts_today", x=WhatsappState.first_contacts_today, y=WhatsappState.first_contact_cap),
                size="2",
                data_testid="wa-first-contacts",
            ),
            rx.cond(
                AuthState.is_admin,
                rx.vstack(
                    rx.hstack(
                        rx.input(
                            value=GuardrailsState.cap_draft,
                            on_change=GuardrailsState.set_cap_draft,
                            placeholder=WhatsappState.first_contact_cap.to_string(),
                            inputmode="numeric",
                            dir="ltr",
                            width="8rem",
                            data_testid="wa-cap-input",
                        ),
                        rx.button(t("wa_cap_save"), size="2", on_click=GuardrailsState.save_cap, data_testid="wa-cap-save"),
                        rx.cond(GuardrailsState.cap_saved, rx.text(t("saved"), size="1", color_scheme="green", data_testid="wa-cap-saved")),
                        align="center",
                        spacing="2",
                    ),
                    rx.cond(GuardrailsState.cap_error != "", rx.text(GuardrailsState.cap_error, size="1", color_scheme="red", data_testid="wa-cap-error")),
                    rx.text(t("wa_cap_hint"), size="1", color_scheme="gray"),
                    rx.checkbox(
                        t("wa_reject_calls"),
                        checked=WhatsappState.reject_calls,
                        on_change=GuardrailsState.set_reject_calls,
                        size="2",
                        margin_top="0.5rem",
                        data_testid="wa-reject-calls",
                    ),
                    spacing="1",
                ),
            ),
            spacing="2",
            align="start",
            width="100%",
        ),
        data_testid="wa-guardrails",
    )
