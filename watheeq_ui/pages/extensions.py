"""Extensions (OWNER/ADMIN): who has which SIP extension, the PBX settings, bulk assignment."""

from __future__ import annotations

import csv
import io

import reflex as rx
from pydantic import BaseModel

from services import accounts, call_center, db
from services.errors import DomainError
from services.models import ExtensionAssign, PbxSettingsIn, Principal

from watheeq_ui import routes
from watheeq_ui.components.ui import card, field_error, labelled, name_text, role_label, section_title
from watheeq_ui.error_messages import error_text
from watheeq_ui.i18n import t, t_fmt, tr
from watheeq_ui.layout import template
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

    def _reload(self, principal: Principal) -> None:
        with db.session_scope() as session:
            users = accounts.list_users(session=session, tenant_id=principal.tenant_id)
            extensions = call_center.get_extensions(session=session, tenant_id=principal.tenant_id, actor=principal)
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

    def _show_pbx(self, principal: Principal) -> None:
        with db.session_scope() as session:
            pbx = call_center.get_pbx_settings(session=session, tenant_id=principal.tenant_id)
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
        principal = await principal_for_page(self, "admin")
        if principal is None:
            return
        self._reload(principal)
        self._show_pbx(principal)
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
        principal = await principal_for_page(self, "admin")
        if principal is None:
            return None
        lang = (await self.get_state(LangState)).lang
        if not self.form_user:
            self.form_errors = {"user_id": error_text(lang, "choose a user")}
            return None
        try:
            with db.session_scope() as session:
                result = call_center.assign_extension(
                    session=session,
                    tenant_id=principal.tenant_id,
                    actor=principal,
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
        self._reload(principal)
        return rx.toast.success(f"{tr(lang, 'saved')}: {result.extension}")

    @rx.event
    def ask_delete(self, extension_id: str, label: str):
        self.delete_id, self.delete_label = extension_id, label

    @rx.event
    def cancel_delete(self):
        self.delete_id = self.delete_label = ""

    @rx.event
    async def confirm_delete(self):
        principal = await principal_for_page(self, "admin")
        if principal is None or not self.delete_id:
            return None
        try:
            with db.session_scope() as session:
                call_center.delete_extension(
                    session=session, tenant_id=principal.tenant_id, actor=principal, extension_id=int(self.delete_id)
                )
        except DomainError as exc:
            self.delete_id = ""
            return rx.toast.error(error_text((await self.get_state(LangState)).lang, exc))
        self.delete_id = self.delete_label = ""
        self._reload(principal)
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
        principal = await principal_for_page(self, "admin")
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
            with db.session_scope() as session:
                call_center.update_pbx_settings(
                    session=session,
                    tenant_id=principal.tenant_id,
                    actor=principal,
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
        self._show_pbx(principal)
        return rx.toast.success(tr(lang, "saved"))

    # ------------------------------------------------------------------ bulk assignment

    @rx.event
    async def bulk_assign(self, files: list[rx.UploadFile]):
        principal = await principal_for_page(self, "admin")
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
                with db.session_scope() as session:
                    call_center.assign_extension(
                        session=session,
                        tenant_id=principal.tenant_id,
                        actor=principal,
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
        self._reload(principal)


# ---------------------------------------------------------------------- view


def _users_table() -> rx.Component:
    return rx.table.root(
        rx.table.header(
            rx.table.row(
                *[rx.table.column_header_cell(t(k)) for k in ("user", "email", "extension", "display_name")],
                rx.table.column_header_cell(""),
            )
        ),
        rx.table.body(
            rx.foreach(
                ExtensionsState.users,
                lambda u: rx.table.row(
                    rx.table.row_header_cell(rx.vstack(rx.text(name_text(u.name), weight="medium"), rx.text(role_label(u.role), size="1", color_scheme="gray"), spacing="0")),
                    rx.table.cell(u.email),
                    rx.table.cell(
                        rx.cond(
                            u.extension != "",
                            rx.badge(u.extension, size="2", variant="soft", data_testid="extension-number"),
                            rx.text(t("no_extension"), color_scheme="gray", size="2"),
                        )
                    ),
                    rx.table.cell(name_text(u.display_name)),
                    rx.table.cell(
                        rx.hstack(
                            rx.button(rx.icon("pencil", size=14), t("edit"), size="1", variant="soft", on_click=ExtensionsState.edit(u.user_id)),
                            rx.cond(
                                u.extension_id != "",
                                rx.button(
                                    rx.icon("trash-2", size=14),
                                    t("delete"),
                                    size="1",
                                    variant="soft",
                                    color_scheme="red",
                                    on_click=ExtensionsState.ask_delete(u.extension_id, u.extension),
                                    data_testid="extension-delete",
                                ),
                            ),
                        )
                    ),
                    data_testid="user-row",
                ),
            )
        ),
        variant="ghost",
        width="100%",
        data_testid="extensions-table",
    )


# The secret fields' element ids: the submit chain empties them whatever the outcome.
PASSWORD_FIELD_ID = "assign-password"
TURN_CREDENTIAL_FIELD_ID = "pbx-turn-credential"


def _assign_form() -> rx.Component:
    errors = ExtensionsState.form_errors
    return card(
        section_title("assign_extension"),
        rx.form(
            rx.vstack(
                labelled(
                    "user",
                    rx.select.root(
                        rx.select.trigger(placeholder=t("choose_user"), width="100%", data_testid="assign-user"),
                        rx.select.content(rx.foreach(ExtensionsState.user_options, lambda o: rx.select.item(o.label, value=o.value))),
                        value=ExtensionsState.form_user,
                        on_change=ExtensionsState.set_form_user,
                    ),
                    errors.get("user_id", ""),
                ),
                labelled(
                    "extension",
                    rx.input(value=ExtensionsState.form_extension, on_change=ExtensionsState.set_form_extension, inputmode="numeric", data_testid="assign-extension"),
                    errors.get("extension", ""),
                ),
                labelled(
                    "display_name",
                    rx.input(value=ExtensionsState.form_display_name, on_change=ExtensionsState.set_form_display_name, data_testid="assign-display-name"),
                    errors.get("display_name", ""),
                ),
                labelled(
                    "sip_password",
                    rx.input(
                        type="password",
                        name="password",
                        id=PASSWORD_FIELD_ID,
                        auto_complete="new-password",
                        data_testid="assign-password",
                    ),
                    errors.get("password", ""),
                    hint_key="sip_password_hint",
                ),
                rx.button(rx.icon("check", size=14), t("assign"), type="submit", data_testid="assign-submit"),
                spacing="3",
                width="100%",
            ),
            on_submit=[ExtensionsState.assign, rx.set_value(PASSWORD_FIELD_ID, "")],
            width="100%",
        ),
    )


def _pbx_input(label_key: str, name: str, value: rx.Var, error_key: str, hint_key: str | None = None, **props) -> rx.Component:
    return labelled(
        label_key,
        # Host names, ports, paths and URLs read left to right in both languages ("/ws", not "ws/").
        rx.input(value=value, on_change=lambda v: ExtensionsState.set_pbx_field(name, v), dir="ltr", data_testid=f"pbx-{name}", **props),
        ExtensionsState.pbx_errors.get(error_key, ""),
        hint_key=hint_key,
    )


def _pbx_form() -> rx.Component:
    return card(
        section_title("pbx_settings", rx.code(ExtensionsState.pbx_wss_url, size="1")),
        rx.form(
            rx.grid(
                _pbx_input("pbx_host", "host", ExtensionsState.pbx_host, "host", placeholder="pbx.example.local"),
                _pbx_input("sip_domain", "domain", ExtensionsState.pbx_domain, "sip_domain"),
                _pbx_input("pbx_did", "did", ExtensionsState.pbx_did, "did", hint_key="pbx_did_hint",
                           placeholder="+966110000000"),
                labelled(
                    "pbx_transport",
                    rx.select.root(
                        rx.select.trigger(width="100%", data_testid="pbx-transport"),
                        rx.select.content(
                            rx.select.item(t("pbx_transport_wss"), value="wss"),
                            rx.select.item(t("pbx_transport_ws"), value="ws"),
                        ),
                        value=ExtensionsState.pbx_transport,
                        on_change=lambda v: ExtensionsState.set_pbx_field("transport", v),
                    ),
                    ExtensionsState.pbx_errors.get("transport", ""),
                ),
                _pbx_input("wss_port", "port", ExtensionsState.pbx_port, "wss_port", inputmode="numeric"),
                _pbx_input("wss_path", "path", ExtensionsState.pbx_path, "wss_path"),
                columns="2",
                spacing="3",
                width="100%",
            ),
            rx.vstack(
                labelled(
                    "stun_servers",
                    rx.text_area(
                        value=ExtensionsState.pbx_stun,
                        on_change=lambda v: ExtensionsState.set_pbx_field("stun", v),
                        placeholder="stun:stun.example.local:3478",
                        rows="2",
                        dir="ltr",
                        data_testid="pbx-stun",
                    ),
                ),
                rx.grid(
                    _pbx_input("turn_server", "turn_url", ExtensionsState.pbx_turn_url, "turn", placeholder="turn:turn.example.local:3478"),
                    _pbx_input("turn_username", "turn_username", ExtensionsState.pbx_turn_username, "turn_username"),
                    columns="2",
                    spacing="3",
                    width="100%",
                ),
                labelled(
                    "turn_credential",
                    rx.input(
                        type="password",
                        name="turn_credential",
                        id=TURN_CREDENTIAL_FIELD_ID,
                        auto_complete="new-password",
                        data_testid="pbx-turn_credential",
                    ),
                    ExtensionsState.pbx_errors.get("turn_credential", ""),
                    hint_key="turn_credential_hint",
                ),
                field_error(ExtensionsState.pbx_errors.get("ice", "")),
                rx.button(rx.icon("save", size=14), t("save"), type="submit", data_testid="pbx-save"),
                spacing="3",
                width="100%",
                margin_top="0.75rem",
            ),
            on_submit=[ExtensionsState.save_pbx, rx.set_value(TURN_CREDENTIAL_FIELD_ID, "")],
            width="100%",
        ),
    )


def _bulk() -> rx.Component:
    return card(
        section_title("bulk_assign"),
        rx.text(t("bulk_hint"), size="2", color_scheme="gray"),
        rx.hstack(
            rx.upload(
                rx.button(rx.icon("file-up", size=14), t("choose_csv"), variant="soft", type="button"),
                rx.text(rx.selected_files("bulk_csv").join(", "), size="2"),
                id="bulk_csv",
                accept={"text/csv": [".csv"]},
                max_files=1,
                border="none",
                padding="0",
                data_testid="bulk-upload",
            ),
            rx.button(
                t("import"),
                on_click=ExtensionsState.bulk_assign(rx.upload_files(upload_id="bulk_csv")),
                data_testid="bulk-import",
            ),
            align="center",
            margin_y="0.75rem",
        ),
        field_error(ExtensionsState.bulk_error),
        rx.cond(
            ExtensionsState.bulk_results.length() > 0,
            rx.table.root(
                rx.table.header(
                    rx.table.row(*[rx.table.column_header_cell(t(k)) for k in ("row", "email", "extension", "result")])
                ),
                rx.table.body(
                    rx.foreach(
                        ExtensionsState.bulk_results,
                        lambda r: rx.table.row(
                            rx.table.cell(r.row),
                            rx.table.cell(r.email),
                            rx.table.cell(r.extension),
                            rx.table.cell(
                                rx.cond(
                                    r.done,
                                    rx.badge(t("done"), color_scheme="green"),
                                    rx.hstack(rx.badge(t("rejected"), color_scheme="red"), rx.text(r.reason, size="1")),
                                )
                            ),
                            data_testid="bulk-result",
                        ),
                    )
                ),
                size="1",
                width="100%",
            ),
        ),
    )


def _delete_dialog() -> rx.Component:
    return rx.alert_dialog.root(
        rx.alert_dialog.content(
            rx.alert_dialog.title(t_fmt("confirm_delete", x=ExtensionsState.delete_label)),
            rx.alert_dialog.description(t("confirm_delete_body")),
            rx.hstack(
                rx.alert_dialog.cancel(rx.button(t("cancel"), variant="soft", color_scheme="gray", on_click=ExtensionsState.cancel_delete)),
                rx.alert_dialog.action(
                    rx.button(t("delete"), color_scheme="red", on_click=ExtensionsState.confirm_delete, data_testid="confirm-delete")
                ),
                justify="end",
                spacing="3",
                margin_top="1rem",
            ),
        ),
        open=ExtensionsState.delete_id != "",
    )


@template(route=routes.EXTENSIONS, title_key="nav_extensions", access="admin", on_load=ExtensionsState.load)
def extensions() -> rx.Component:
    return rx.vstack(
        rx.grid(
            card(
                section_title("extensions_title", rx.badge(t_fmt("users_count", n=ExtensionsState.users_label), variant="soft")),
                _users_table(),
                grid_column=rx.breakpoints(initial="auto", lg="span 2"),
            ),
            _assign_form(),
            columns=rx.breakpoints(initial="1", lg="3"),
            spacing="4",
            width="100%",
        ),
        rx.grid(_pbx_form(), _bulk(), columns=rx.breakpoints(initial="1", lg="2"), spacing="4", width="100%"),
        _delete_dialog(),
        spacing="4",
        width="100%",
    )
