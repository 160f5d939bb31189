"""The extensions page's state (OWNER/ADMIN): who has which SIP extension, the PBX settings, bulk assignment."""

from __future__ import annotations

import csv
import io

import reflex as rx
from pydantic import BaseModel

from services import accounts, call_center, db
from services.authz import Permission
from services.errors import DomainError
from services.models import ExtensionAssign, PbxSettingsIn, Principal

from watheeq_ui.error_messages import error_text
from watheeq_ui.i18n import tr
from watheeq_ui.state import offloop
from watheeq_ui.state.auth import principal_for_page
from watheeq_ui.state.lang import LangState

MAX_CSV_BYTES = 1_000_000
CSV_COLUMNS = ("email", "extension", "display_name", "password")


class UserExtension(BaseModel):
    user_id: str
    name: str
    email: str
    role: str
    extension_id: str
    extension: str
    display_name: str


class UserOption(BaseModel):
    value: str
    label: str


class BulkResult(BaseModel):
    row: int
    email: str
    extension: str
    done: bool
    reason: str


def _error_field(exc: DomainError, default: str) -> str:
    field = exc.field or default
    return "ice" if field.startswith("ice_servers") else field


class ExtensionsState(rx.State):
    users: list[UserExtension] = []
    user_options: list[UserOption] = []

    form_user: str = ""
    form_extension: str = ""
    form_display_name: str = ""
    # No SIP password nor TURN credential here: state is pickled to disk or Redis. Those
    # fields are uncontrolled and reach the server only as their form's submit argument.
    form_errors: dict[str, str] = {}

    delete_id: str = ""
    delete_label: str = ""

    pbx_host: str = ""
    pbx_transport: str = "wss"
    pbx_port: str = "8089"
    pbx_path: str = "/ws"
    pbx_domain: str = ""
    pbx_did: str = ""
    pbx_stun: str = ""
    pbx_turn_url: str = ""
    pbx_turn_username: str = ""
    pbx_wss_url: str = ""
    pbx_errors: dict[str, str] = {}

    bulk_results: list[BulkResult] = []
    bulk_error: str = ""

    @rx.var
    def users_label(self) -> str:
        return str(len(self.users))

    # ------------------------------------------------------------------ loading

    async def _reload(self, principal: Principal) -> None:
        users, extensions = await offloop.run(_read_users_and_extensions, principal)
        by_user = {e.user_id: e for e in extensions}
        self.users = [
            UserExtension(
                user_id=str(u.id),
                name=u.full_name or u.email,
                email=u.email,
                role=u.role.value,
                extension_id=str(by_user[u.id].id) if u.id in by_user else "",
                extension=by_user[u.id].extension if u.id in by_user else "",
                display_name=by_user[u.id].display_name if u.id in by_user else "",
            )
            for u in users
        ]
        self.user_options = [UserOption(value=str(u.id), label=f"{u.full_name or u.email} · {u.email}") for u in users if u.active]

    async def _show_pbx(self, principal: Principal) -> None:
        pbx = await offloop.call(call_center.get_pbx_settings, principal)
        self.pbx_errors = {}
        if pbx is None:
            return
        self.pbx_host, self.pbx_port, self.pbx_path, self.pbx_domain = pbx.host, str(pbx.wss_port), pbx.wss_path, pbx.sip_domain
        self.pbx_transport = pbx.transport
        self.pbx_did = pbx.did
        self.pbx_wss_url = pbx.wss_url
        stun: list[str] = []
        self.pbx_turn_url = self.pbx_turn_username = ""
        for server in pbx.ice_servers:
            urls = server.get("urls")
            for url in [urls] if isinstance(urls, str) else list(urls or []):
                if url.startswith("stun:"):
                    stun.append(url)
                elif not self.pbx_turn_url:
                    self.pbx_turn_url = url
                    self.pbx_turn_username = server.get("username") or ""
        self.pbx_stun = "\n".join(stun)

    @rx.event
    async def load(self):
        principal = await principal_for_page(self, Permission.MANAGE_EXTENSIONS)
        if principal is None:
            return
        await self._reload(principal)
        await self._show_pbx(principal)
        self.form_errors = {}
        self.bulk_results = []
        self.bulk_error = ""

    # ------------------------------------------------------------------ assign / change / delete

    @rx.event
    def set_form_user(self, value: str):
        self.form_user = value
        current = next((u for u in self.users if u.user_id == value), None)
        self.form_extension = current.extension if current else ""
        self.form_display_name = current.display_name if current else ""
        self.form_errors = {}

    @rx.event
    def set_form_extension(self, value: str):
        self.form_extension = value

    @rx.event
    def set_form_display_name(self, value: str):
        self.form_display_name = value

    @rx.event
    def edit(self, user_id: str):
        return ExtensionsState.set_form_user(user_id)

    @rx.event
    async def assign(self, form: dict):
        """The assignment form's submit; ``form`` carries the SIP password, never kept."""
        password = str(form.get("password") or "") if isinstance(form, dict) else ""
        principal = await principal_for_page(self, Permission.MANAGE_EXTENSIONS)
        if principal is None:
            return None
        lang = (await self.get_state(LangState)).lang
        if not self.form_user:
            self.form_errors = {"user_id": error_text(lang, "choose a user")}
            return None
        try:
            result = await offloop.call(
                call_center.assign_extension,
                principal,
                data=ExtensionAssign(
                    user_id=int(self.form_user),
                    extension=self.form_extension,
                    display_name=self.form_display_name,
                    password=password or None,
                ),
            )
        except DomainError as exc:
            self.form_errors = {_error_field(exc, "extension"): error_text(lang, exc)}
            return None
        self.form_errors = {}
        await self._reload(principal)
        return rx.toast.success(f"{tr(lang, 'saved')}: {result.extension}")

    @rx.event
    def ask_delete(self, extension_id: str, label: str):
        self.delete_id, self.delete_label = extension_id, label

    @rx.event
    def cancel_delete(self):
        self.delete_id = self.delete_label = ""

    @rx.event
    async def confirm_delete(self):
        principal = await principal_for_page(self, Permission.MANAGE_EXTENSIONS)
        if principal is None or not self.delete_id:
            return None
        try:
            await offloop.call(call_center.delete_extension, principal, extension_id=int(self.delete_id))
        except DomainError as exc:
            self.delete_id = ""
            return rx.toast.error(error_text((await self.get_state(LangState)).lang, exc))
        self.delete_id = self.delete_label = ""
        await self._reload(principal)
        return None

    # ------------------------------------------------------------------ PBX settings

    @rx.event
    def set_pbx_field(self, name: str, value: str):
        if name in {"host", "transport", "port", "path", "domain", "did", "stun", "turn_url", "turn_username"}:
            setattr(self, f"pbx_{name}", value)

    @rx.event
    async def save_pbx(self, form: dict):
        """The PBX form's submit; ``form`` carries the TURN credential, never kept."""
        turn_credential = str(form.get("turn_credential") or "") if isinstance(form, dict) else ""
        principal = await principal_for_page(self, Permission.MANAGE_PBX)
        if principal is None:
            return None
        lang = (await self.get_state(LangState)).lang
        if not self.pbx_port.strip().isdigit():
            self.pbx_errors = {"wss_port": error_text(lang, "the port is a number between 1 and 65535")}
            return None
        ice: list[dict] = [{"urls": line.strip()} for line in self.pbx_stun.splitlines() if line.strip()]
        if self.pbx_turn_url.strip():
            turn: dict = {"urls": self.pbx_turn_url.strip()}
            if self.pbx_turn_username.strip():
                turn["username"] = self.pbx_turn_username.strip()
            ice.append(turn)
        try:
            await offloop.call(
                call_center.update_pbx_settings,
                principal,
                data=PbxSettingsIn(
                    host=self.pbx_host,
                    transport=self.pbx_transport,
                    wss_port=int(self.pbx_port),
                    wss_path=self.pbx_path,
                    sip_domain=self.pbx_domain,
                    did=self.pbx_did,
                    ice_servers=ice,
                ),
                # Empty keeps the stored credential: the field never shows it.
                turn_credential=turn_credential or None,
            )
        except DomainError as exc:
            self.pbx_errors = {_error_field(exc, "host"): error_text(lang, exc)}
            return None
        await self._show_pbx(principal)
        return rx.toast.success(tr(lang, "saved"))

    # ------------------------------------------------------------------ bulk assignment

    @rx.event
    async def bulk_assign(self, files: list[rx.UploadFile]):
        principal = await principal_for_page(self, Permission.MANAGE_EXTENSIONS)
        if principal is None:
            return
        self.bulk_results, self.bulk_error = [], ""
        lang = (await self.get_state(LangState)).lang
        if not files:
            self.bulk_error = error_text(lang, "choose a CSV file")
            return
        raw = await files[0].read()
        if len(raw) > MAX_CSV_BYTES:
            self.bulk_error = error_text(lang, "the file is larger than 1 MB")
            return
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            self.bulk_error = error_text(lang, "the file is not UTF-8 text")
            return
        reader = csv.DictReader(io.StringIO(text))
        header = [h.strip().lower() for h in reader.fieldnames or []]
        if "email" not in header or "extension" not in header:
            self.bulk_error = error_text(lang, "the first line must name the columns: " + ", ".join(CSV_COLUMNS))
            return
        by_email = {u.email.lower(): u for u in self.users}
        results: list[BulkResult] = []
        for number, raw_row in enumerate(reader, start=2):
            row = {(k or "").strip().lower(): (v or "").strip() for k, v in raw_row.items()}
            email, extension = row.get("email", ""), row.get("extension", "")
            user = by_email.get(email.lower())
            if user is None:
                results.append(BulkResult(row=number, email=email, extension=extension, done=False, reason=error_text(lang, "no user with this email in the firm")))
                continue
            try:
                # One transaction per row: a refused row leaves the others in place.
                await offloop.call(
                    call_center.assign_extension,
                    principal,
                    data=ExtensionAssign(
                        user_id=int(user.user_id),
                        extension=extension,
                        display_name=row.get("display_name", ""),
                        password=row.get("password") or None,
                    ),
                )
            except DomainError as exc:
                results.append(BulkResult(row=number, email=email, extension=extension, done=False, reason=error_text(lang, exc)))
                continue
            results.append(BulkResult(row=number, email=email, extension=extension, done=True, reason=""))
        self.bulk_results = results
        await self._reload(principal)


def _read_users_and_extensions(principal: Principal):
    """The firm's users and their extensions in one unit of work (run off the event loop)."""
    with db.session_scope() as session:
        users = accounts.list_users(session=session, tenant_id=principal.tenant_id)
        extensions = call_center.get_extensions(session=session, tenant_id=principal.tenant_id, actor=principal)
    return users, extensions
