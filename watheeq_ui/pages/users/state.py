"""The users page's state (OWNER/ADMIN): the firm's accounts; add, change role, disable or enable, reset a password.

Every rule is the service's (``services.accounts``); this page shows its refusals. A
password typed here travels in the submitted form only, never in a state var; a
set-password link is held in state only while its dialog shows it, once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import reflex as rx
from pydantic import BaseModel

from services import accounts, db
from services.authz import Permission
from services.errors import DomainError
from services.models import PasswordLinkPublic, Principal, Role

from watheeq_ui import formatting, routes
from watheeq_ui.error_messages import error_text
from watheeq_ui.i18n import tr
from watheeq_ui.state import offloop
from watheeq_ui.state.auth import principal_for_page, tenant_timezone
from watheeq_ui.state.lang import LangState

T = TypeVar("T")


class UserRow(BaseModel):
    user_id: str
    name: str
    email: str
    role: str
    active: bool
    extension: str
    last_sign_in: str
    is_self: bool
    # What the service would let this admin change (never oneself; an owner only by an owner).
    manageable: bool


async def _in_session(work: Callable[..., T]) -> T:
    """Run ``work(session)`` in a thread, committed when it returns (argon2 and the database stay off the event loop)."""

    def run() -> T:
        with db.session_scope() as session:
            return work(session)

    return await offloop.run(run)


class UsersState(rx.State):
    users: list[UserRow] = []
    role_options: list[str] = []

    # The role is held here, not read from the form: a Radix select inside a form submits
    # nothing until its options have rendered.
    new_role: str = "AGENT"
    new_mode: str = "link"
    form_errors: dict[str, str] = {}

    # The one moment a set-password link is shown; cleared when its dialog closes.
    link_url: str = ""
    link_email: str = ""

    disable_id: str = ""
    disable_label: str = ""

    reset_id: str = ""
    reset_label: str = ""
    reset_mode: str = "link"
    reset_error: str = ""

    @rx.var
    def users_label(self) -> str:
        return str(len(self.users))

    async def _lang(self) -> str:
        return (await self.get_state(LangState)).lang

    async def _reload(self, principal: Principal) -> None:
        tz = await tenant_timezone(self)
        users = await _in_session(lambda s: accounts.list_users(session=s, tenant_id=principal.tenant_id))
        self.users = [
            UserRow(
                user_id=str(u.id),
                name=u.full_name or u.email,
                email=u.email,
                role=u.role.value,
                active=u.active,
                extension=u.extension or "",
                last_sign_in=formatting.local_time(u.last_sign_in_at, tz),
                is_self=u.id == principal.user_id,
                manageable=u.id != principal.user_id and (u.role is not Role.OWNER or principal.role is Role.OWNER),
            )
            for u in users
        ]
        # An admin is not offered what the service would refuse: making an owner.
        self.role_options = [r.value for r in Role if r is not Role.OWNER or principal.role is Role.OWNER]

    def _show_link(self, link: PasswordLinkPublic | None, email: str) -> None:
        if link is None:
            return
        self.link_url = f"{self.router.url.origin}{routes.SET_PASSWORD}?token={link.token}"
        self.link_email = email

    @rx.event
    async def load(self):
        principal = await principal_for_page(self, Permission.MANAGE_USERS)
        if principal is None:
            return
        self.form_errors = {}
        self.link_url = self.link_email = ""
        self.disable_id = self.reset_id = ""
        await self._reload(principal)

    # ------------------------------------------------------------------ add

    @rx.event
    def set_new_role(self, value: str):
        self.new_role = value

    @rx.event
    def set_new_mode(self, value: str):
        self.new_mode = "password" if value == "password" else "link"

    @rx.event
    async def add_user(self, form: dict):
        principal = await principal_for_page(self, Permission.MANAGE_USERS)
        if principal is None:
            return None
        lang = await self._lang()
        password = str(form.get("password") or "") if self.new_mode == "password" else None
        try:
            created = await _in_session(
                lambda s: accounts.add_user(
                    session=s,
                    tenant_id=principal.tenant_id,
                    actor=principal,
                    email=str(form.get("email") or ""),
                    full_name=str(form.get("full_name") or ""),
                    role=self.new_role,  # type: ignore[arg-type]  (the service validates it)
                    password=password,
                )
            )
        except DomainError as exc:
            self.form_errors = {exc.field or "email": error_text(lang, exc)}
            return None
        self.form_errors = {}
        self.new_role = "AGENT"
        self._show_link(created.password_link, created.user.email)
        await self._reload(principal)
        return [
            rx.call_script("document.getElementById('add-user-form').reset()"),
            rx.toast.success(f"{tr(lang, 'saved')}: {created.user.email}"),
        ]

    @rx.event
    def close_link(self):
        self.link_url = self.link_email = ""

    # ------------------------------------------------------------------ role, active

    async def _update(self, user_id: str, **change) -> list | None:
        principal = await principal_for_page(self, Permission.MANAGE_USERS)
        if principal is None:
            return None
        lang = await self._lang()
        try:
            await _in_session(
                lambda s: accounts.update_user(
                    session=s, tenant_id=principal.tenant_id, actor=principal, user_id=int(user_id), **change
                )
            )
        except DomainError as exc:
            await self._reload(principal)
            return [rx.toast.error(error_text(lang, exc))]
        await self._reload(principal)
        return [rx.toast.success(tr(lang, "saved"))]

    @rx.event
    async def change_role(self, user_id: str, role: str):
        return await self._update(user_id, role=role)

    @rx.event
    async def enable(self, user_id: str):
        return await self._update(user_id, active=True)

    @rx.event
    def ask_disable(self, user_id: str, label: str):
        self.disable_id, self.disable_label = user_id, label

    @rx.event
    def cancel_disable(self):
        self.disable_id = self.disable_label = ""

    @rx.event
    async def confirm_disable(self):
        user_id, self.disable_id = self.disable_id, ""
        if not user_id:
            return None
        return await self._update(user_id, active=False)

    # ------------------------------------------------------------------ password reset

    @rx.event
    def ask_reset(self, user_id: str, label: str):
        self.reset_id, self.reset_label, self.reset_mode, self.reset_error = user_id, label, "link", ""

    @rx.event
    def set_reset_mode(self, value: str):
        self.reset_mode = "password" if value == "password" else "link"

    @rx.event
    def cancel_reset(self):
        self.reset_id = self.reset_label = self.reset_error = ""

    @rx.event
    async def confirm_reset(self, form: dict):
        principal = await principal_for_page(self, Permission.MANAGE_USERS)
        if principal is None or not self.reset_id:
            return None
        lang = await self._lang()
        password = None
        if self.reset_mode == "password":
            password = str(form.get("password") or "")
            if password != str(form.get("confirm") or ""):
                self.reset_error = tr(lang, "passwords_differ")
                return None
        user_id, email = int(self.reset_id), self.reset_label
        try:
            link = await _in_session(
                lambda s: accounts.reset_password(
                    session=s, tenant_id=principal.tenant_id, actor=principal, user_id=user_id, password=password
                )
            )
        except DomainError as exc:
            self.reset_error = error_text(lang, exc)
            return None
        self.reset_id = self.reset_label = self.reset_error = ""
        self._show_link(link, email)
        return rx.toast.success(tr(lang, "saved"))
