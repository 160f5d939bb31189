"""The signed-in session of one browser tab.

The bearer token lives in the browser's local storage so a reload or a new tab keeps
the session; who the user is (ids, tenant, role) lives only in backend vars, resolved
from the token on every page load so a revoked token or a disabled user is noticed at
the next navigation. Pages never trust the browser's idea of the role: they call
:func:`principal_for_page` before reading anything.
"""

from __future__ import annotations

import asyncio
import time
from urllib.parse import quote

import reflex as rx

from services import accounts, db
from services.errors import AuthenticationFailed, Conflict, NotFound, TooManyAttempts
from services import call_center
from services.models import ADMIN_ROLES, SUPERVISOR_ROLES, Principal, Role, SignInResult

from watheeq_ui import routes

IDLE_TIMEOUT_S = 30 * 60
# Writing the activity stamp to the browser on every event would add a delta to each
# one; a minute of slack on a 30-minute timeout is invisible to the user.
ACTIVITY_RESOLUTION_S = 60

ACCESS_ROLES: dict[str, frozenset[Role]] = {
    "member": frozenset(Role),
    "supervisor": SUPERVISOR_ROLES,
    "admin": ADMIN_ROLES,
}


class AuthState(rx.State):
    token: str = rx.LocalStorage("", name="watheeq_session", sync=True)
    last_active: str = rx.LocalStorage("0", name="watheeq_last_active", sync=True)

    signed_in: bool = False
    user_name: str = ""
    user_email: str = ""
    role: str = ""
    tenant_name: str = ""
    has_extension: bool = False

    login_error: str = ""
    login_wait: int = 0
    notice: str = ""
    submitting: bool = False

    _user_id: int = 0
    _tenant_id: int = 0
    _role: str = ""
    _timezone: str = "Asia/Riyadh"

    @rx.var
    def is_admin(self) -> bool:
        return self.role in {r.value for r in ADMIN_ROLES}

    @rx.var
    def is_supervisor(self) -> bool:
        return self.role in {r.value for r in SUPERVISOR_ROLES}

    # ------------------------------------------------------------------ helpers (not events)

    def _principal(self) -> Principal | None:
        if not self.signed_in or not self._user_id:
            return None
        return Principal(
            user_id=self._user_id,
            tenant_id=self._tenant_id,
            role=Role(self._role),
            email=self.user_email,
            full_name=self.user_name,
        )

    def _is_idle(self) -> bool:
        try:
            last = float(self.last_active or 0)
        except ValueError:
            last = 0.0
        return time.time() - last > IDLE_TIMEOUT_S

    def _touch(self) -> None:
        now = time.time()
        try:
            last = float(self.last_active or 0)
        except ValueError:
            last = 0.0
        if now - last >= ACTIVITY_RESOLUTION_S:
            self.last_active = str(int(now))

    def _adopt(self, principal: Principal) -> None:
        with db.session_scope() as session:
            tenant = accounts.get_tenant(session=session, tenant_id=principal.tenant_id)
            try:
                call_center.get_extension_for_user(
                    session=session, tenant_id=principal.tenant_id, user_id=principal.user_id
                )
                has_extension = True
            except (NotFound, Conflict):
                # No extension, or no PBX to use it with: no phone to call from.
                has_extension = False
        self._user_id = principal.user_id
        self._tenant_id = principal.tenant_id
        self._role = principal.role.value
        self._timezone = tenant.timezone
        self.signed_in = True
        self.user_name = principal.full_name or principal.email
        self.user_email = principal.email
        self.role = principal.role.value
        self.tenant_name = tenant.name
        self.has_extension = has_extension

    def _forget(self, notice: str = "") -> None:
        self.token = ""
        self.signed_in = False
        self.user_name = self.user_email = self.role = self.tenant_name = ""
        self.has_extension = False
        self._user_id = self._tenant_id = 0
        self._role = ""
        self.notice = notice

    def _revoke(self) -> None:
        if self.token:
            with db.session_scope() as session:
                accounts.revoke_token(session=session, token=self.token)

    def _login_redirect(self):
        path = self.router.url.path or routes.DASHBOARD
        if path == routes.LOGIN:
            return rx.redirect(routes.LOGIN)
        return rx.redirect(f"{routes.LOGIN}?next={quote(path, safe='/')}")

    def timezone(self) -> str:
        return self._timezone

    def current(self, access: str = "member") -> Principal | None:
        """The principal if signed in, active and allowed ``access``; counts as activity."""
        principal = self._principal()
        if principal is None or self._is_idle():
            return None
        self._touch()
        return principal if principal.role in ACCESS_ROLES[access] else None

    # ------------------------------------------------------------------ events

    @rx.event
    async def login(self, form: dict):
        email = str(form.get("email", "")).strip()
        password = str(form.get("password", ""))
        source = self.router.session.client_ip or None
        self.submitting = True
        self.login_error = ""
        yield

        def sign_in() -> SignInResult:
            with db.session_scope() as session:
                return accounts.sign_in(session=session, email=email, password=password, source=source)

        try:
            # argon2 costs tens of milliseconds: keep it off the event loop.
            result = await asyncio.to_thread(sign_in)
        except TooManyAttempts as exc:
            self.submitting = False
            self.login_error = "too_many_attempts"
            self.login_wait = exc.retry_after
            return
        except AuthenticationFailed as exc:
            self.submitting = False
            self.login_error = (
                "account_disabled" if exc.message == accounts.ACCOUNT_DISABLED_MESSAGE else "wrong_login"
            )
            return
        principal, token = result.principal, result.token
        self.token = token
        self.last_active = str(int(time.time()))
        self.notice = ""
        self._adopt(principal)
        self.submitting = False
        target = self.router.url.query_parameters.get("next", routes.DASHBOARD)
        # Only a path of this app: never an absolute URL handed in by a crafted link.
        if not target.startswith("/") or target.startswith("//"):
            target = routes.DASHBOARD
        yield rx.redirect(target)

    @rx.event
    def ensure_session(self):
        """on_load of every signed-in page: resolve the stored token, or go to the login page."""
        if self.token and self._is_idle():
            self._revoke()
            self._forget("idle_logged_out")
            return self._login_redirect()
        if not self.token:
            self._forget(self.notice)
            return self._login_redirect()
        try:
            with db.session_scope() as session:
                principal = accounts.principal_for_token(session=session, token=self.token)
        except AuthenticationFailed:
            self._forget("session_expired")
            return self._login_redirect()
        if principal.user_id != self._user_id or not self.signed_in:
            self._adopt(principal)
        self._touch()
        return None

    @rx.event
    def login_page_loaded(self):
        """on_load of the login page: a still-valid session goes straight to the dashboard."""
        self.submitting = False
        if not self.token or self._is_idle():
            return None
        try:
            with db.session_scope() as session:
                principal = accounts.principal_for_token(session=session, token=self.token)
        except AuthenticationFailed:
            self.token = ""
            return None
        self._adopt(principal)
        return rx.redirect(routes.DASHBOARD)

    @rx.event
    def check_idle(self):
        """Runs every minute from the layout; it is not activity itself."""
        if self.signed_in and self._is_idle():
            self._revoke()
            self._forget("idle_logged_out")
            return rx.redirect(routes.LOGIN)
        return None

    @rx.event
    def logout(self):
        self._revoke()
        self._forget()
        return rx.redirect(routes.LOGIN)


async def principal_for_page(state: rx.State, access: str = "member") -> Principal | None:
    """The acting principal for a page's event, or None when signed out, idle or not allowed."""
    auth = await state.get_state(AuthState)
    return auth.current(access)


async def tenant_timezone(state: rx.State) -> str:
    auth = await state.get_state(AuthState)
    return auth.timezone()
