"""The signed-in session of one browser tab, checked on the server at every event.

Where the session token lives, and why. Reflex 0.10 pickles each tab's state to
``.states/`` (or Redis): every var, backend ``_vars`` included, and the router data,
whose ``rx_router_headers`` keep the websocket handshake's headers, Cookie included
(``reflex/istate/data.py`` ``HeaderData``; pickling one with a cookie keeps it). So an
HttpOnly cookie would be read by the server only through that pickled header, and an
``rx.LocalStorage`` var is a state var. Instead the browser keeps the token in its local
storage (the softphone also needs it for its own credentials route) and hands it to the
server only as the argument of one event (:meth:`AuthState.resume_session`, through
``rx.call_script``) when a tab has no session yet; event arguments reach the handler and
are not stored. The tab's state keeps only the token row's id, in a backend var.

Every event that acts for the user goes through :func:`principal_for_page`: it looks the
session up by that id (token unexpired and unrevoked, user active, idle time measured on
the server) and otherwise signs the tab out at once with the reason, which the layout
shows on the login page. Nothing about the principal is kept between events.
"""

from __future__ import annotations

import inspect
import json
import os
from collections.abc import Sequence
from urllib.parse import quote

import reflex as rx

from services import accounts, config, db
from services.errors import AuthenticationFailed, Conflict, NotFound, TooManyAttempts
from services import call_center
from services.authz import ADMIN_ROLES, SUPERVISOR_ROLES, Permission, allowed
from services.models import Principal, SignInResult, TenantPublic

from watheeq_ui import live_tabs, routes
from watheeq_ui.state import offloop

# The browser's copy of the token; the softphone reads the same key (softphone.jsx).
TOKEN_KEY = "watheeq_session"
_READ_TOKEN = f"localStorage.getItem({json.dumps(TOKEN_KEY)}) || ''"
_FORGET_TOKEN = f"localStorage.removeItem({json.dumps(TOKEN_KEY)})"
# How often a tab in a call tells the server the user is active (the softphone's keep-alive).
SESSION_CHECK_MS = 30_000

# Tests of the production topology read which worker serves a tab (never set in production).
_EXPOSE_WORKER = config.get("WATHEEQ_EXPOSE_WORKER") == "1"

# Each signed-in page's loaders, by route, filled by ``layout.template``: they run once the
# tab's session is known, which for a new tab is one round trip after the page loads, in the
# same event that learns it (see AuthState._run_loaders).
PAGE_LOADERS: dict[str, Sequence] = {}


def _store_token_script(token: str) -> str:
    return f"localStorage.setItem({json.dumps(TOKEN_KEY)}, {json.dumps(token)})"


class AuthState(rx.State):
    signed_in: bool = False
    # Set once the server has signed this tab out (no session, ended, logged out); False
    # until then, also while a new tab's session is being resumed. The softphone mounts
    # while it is False: it registers with the browser's token before the session is
    # resumed here (the API checks the token), and unmounts (unregisters) when it is set.
    signed_out: bool = False
    # Set when a check fails in a signed-in page: the layout then sends the tab to the login page.
    session_ended: bool = False
    user_name: str = ""
    user_email: str = ""
    role: str = ""
    tenant_name: str = ""
    has_extension: bool = False

    login_error: str = ""
    login_wait: int = 0
    notice: str = ""
    submitting: bool = False

    # The pid of the backend worker serving this tab's websocket, shown (hidden) only when
    # WATHEEQ_EXPOSE_WORKER=1: the production profile test proves two tabs are on two workers.
    worker: str = ""

    # The token row's id: names the session on the server, is no credential by itself.
    _session_id: int = 0
    _timezone: str = "Asia/Riyadh"
    _pending_route: str = ""

    @rx.var
    def is_admin(self) -> bool:
        return self.role in {r.value for r in ADMIN_ROLES}

    @rx.var
    def is_supervisor(self) -> bool:
        return self.role in {r.value for r in SUPERVISOR_ROLES}

    # ------------------------------------------------------------------ helpers (not events)

    async def _check(self, *, activity: bool) -> Principal | None:
        """The session's principal now, or None after signing the tab out with the reason."""
        session_id = self._session_id
        if not session_id:
            return None

        def check() -> accounts.SessionCheck:
            with db.session_scope() as session:
                return accounts.check_session(session=session, session_id=session_id, activity=activity)

        result = await offloop.run(check)
        if result.principal is None:
            self._end((result.ended or accounts.SessionEnd.EXPIRED).value)
            return None
        self._show_user(result.principal)
        # This worker pushes a revoked session or a disabled user to the tab (live_tabs).
        live_tabs.follow(
            self, result.principal.tenant_id, result.principal.user_id, "sessions", session_id=session_id, layout=True
        )
        return result.principal

    def _show_user(self, principal: Principal) -> None:
        # A role or name changed by an admin shows at the next event, without a reload.
        # Only what changed is set: every var set is sent to the browser and re-renders the page.
        shown = {
            "signed_in": True,
            "user_name": principal.full_name or principal.email,
            "user_email": principal.email,
            "role": principal.role.value,
        }
        for name, value in shown.items():
            if getattr(self, name) != value:
                setattr(self, name, value)

    def _adopt(self, check: accounts.SessionCheck, tenant: TenantPublic, has_extension: bool) -> None:
        principal = check.principal
        assert principal is not None
        self._session_id = check.session_id
        self._timezone = tenant.timezone
        self._show_user(principal)
        self.session_ended = False
        self.signed_out = False
        self.tenant_name = tenant.name
        self.has_extension = has_extension

    def _forget(self, notice: str = "") -> None:
        live_tabs.unfollow(self, everything=True)
        self.signed_in = False
        self.signed_out = True
        self.user_name = self.user_email = self.role = self.tenant_name = ""
        self.has_extension = False
        self._session_id = 0
        self.notice = notice

    def _end(self, reason: str) -> None:
        self._forget(reason)
        # The page's content is gone at once (the layout renders it only while signed in);
        # the layout then sends the tab to the login page, where the reason is shown.
        self.session_ended = True

    def _login_redirect(self):
        path = self.router.url.path or routes.DASHBOARD
        if path == routes.LOGIN:
            return rx.redirect(routes.LOGIN)
        return rx.redirect(f"{routes.LOGIN}?next={quote(path, safe='/')}")

    def timezone(self) -> str:
        return self._timezone

    async def principal(self, access: Permission | str = "member", *, activity: bool = True) -> Principal | None:
        """The acting principal if the session holds and its role allows ``access`` (an
        :class:`~services.authz.Permission` or a page level of ``authz.ACCESS_ROLES``)."""
        principal = await self._check(activity=activity)
        if principal is None:
            return None
        return principal if allowed(principal, access) else None

    async def _resume(self, token: str) -> accounts.SessionCheck | None:
        """Adopt the browser's token for this tab; None without one, else the check (its
        principal None, with the reason, when the session has ended)."""
        token = token if isinstance(token, str) else ""
        if not token:
            return None

        def start() -> tuple[accounts.SessionCheck, TenantPublic | None, bool]:
            with db.session_scope() as session:
                check = accounts.start_dashboard_session(session=session, token=token)
                principal = check.principal
                if principal is None:
                    return check, None, False
                tenant = accounts.get_tenant(session=session, tenant_id=principal.tenant_id)
                try:
                    call_center.get_extension_for_user(
                        session=session, tenant_id=principal.tenant_id, user_id=principal.user_id
                    )
                except (NotFound, Conflict):
                    # No extension, or no PBX to use it with: no phone to call from.
                    return check, tenant, False
                return check, tenant, True

        check, tenant, has_extension = await offloop.run(start)
        if check.principal is not None and tenant is not None:
            self._adopt(check, tenant, has_extension)
        return check

    async def _run_loaders(self, route: str) -> list:
        """The page's loaders, each on its own state, inside this event: their changes go to the
        browser in this event's one update, with the session's own.

        Returned as events, they would each have been an event of their own, each with its own
        update: a new tab then drew the signed-in page with empty figures, and again with the
        data a moment later (two renders of the whole page in a row, ~90 ms of the browser's
        main thread on the 2-core bench machine). A loader that raises is reported as Reflex
        reports a failed event (logged, and a toast) and the others still run, as before.
        Returns the events the loaders return (a watcher to start, a redirect)."""
        from reflex.app import default_backend_exception_handler

        produced: list = []
        for loader in PAGE_LOADERS.get(route, []):
            if getattr(loader, "is_background", False):
                # A background task runs outside the state's lock (``async with self``): it
                # stays an event of its own.
                produced.append(loader)
                continue
            try:
                result = loader.fn(await self.get_state(loader.state))
                if inspect.isasyncgen(result):
                    produced.extend([event async for event in result if event is not None])
                    continue
                if inspect.isawaitable(result):
                    result = await result
            except Exception as error:  # as Reflex's own event processing does
                produced.append(default_backend_exception_handler(error))
                continue
            if result is not None:
                produced.extend(result if isinstance(result, list | tuple) else [result])
        return produced

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
            result = await offloop.run(sign_in)
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
        token = result.token
        self.notice = ""
        # The token goes to the browser in this event's answer and is never a state var. It
        # is stored before the tab shows as signed in: the softphone asks for its
        # credentials with it the moment it sees the sign-in.
        yield rx.call_script(_store_token_script(token))
        started = await self._resume(token)
        if started is None or started.principal is None:
            self.submitting = False
            self.login_error = "wrong_login"
            yield rx.call_script(_FORGET_TOKEN)
            return
        self.submitting = False
        target = self.router.url.query_parameters.get("next", routes.DASHBOARD)
        # Only a path of this app: never an absolute URL handed in by a crafted link.
        if not target.startswith("/") or target.startswith("//"):
            target = routes.DASHBOARD
        yield rx.redirect(target)

    @rx.event
    async def open_page(self, route: str):
        """on_load of every signed-in page: check the session, then run the page's loaders.

        A tab without a session yet (a new tab) asks the browser for its token first.
        """
        if _EXPOSE_WORKER:
            self.worker = str(os.getpid())
        live_tabs.page_opened(self)
        if self._session_id:
            if await self._check(activity=True) is None:
                self.session_ended = False
                return self._login_redirect()
            return await self._run_loaders(route)
        self._pending_route = route
        self.signed_in = False
        return rx.call_script(_READ_TOKEN, callback=AuthState.resume_session)

    @rx.event
    async def resume_session(self, token: str):
        """The browser's stored token, for a tab that has no session yet (see the module doc)."""
        route, self._pending_route = self._pending_route, ""
        check = await self._resume(token)
        if check is None:
            self._forget(self.notice)
            return self._login_redirect()
        if check.principal is None:
            self._forget((check.ended or accounts.SessionEnd.EXPIRED).value)
            return [rx.call_script(_FORGET_TOKEN), self._login_redirect()]
        return await self._run_loaders(route)

    @rx.event
    async def login_page_loaded(self):
        """on_load of the login page: a still-valid session goes straight to the dashboard."""
        self.submitting = False
        self.session_ended = False
        if self._session_id:
            if await self._check(activity=True) is not None:
                return rx.redirect(routes.DASHBOARD)
            self.session_ended = False
        return rx.call_script(_READ_TOKEN, callback=AuthState.resume_on_login_page)

    @rx.event
    async def resume_on_login_page(self, token: str):
        check = await self._resume(token)
        if check is None:
            return None
        if check.principal is None:
            return rx.call_script(_FORGET_TOKEN)
        return rx.redirect(routes.DASHBOARD)

    async def on_live_change(self, change) -> None:
        """Pushed by this worker (live_tabs) when the user's sessions or account changed, or
        the sweep found the session idle: ends the tab at once with the reason (the layout
        then shows the login page). Not activity itself; not an event of the browser."""
        await self._check(activity=False)

    @rx.event
    def to_login(self):
        """The layout's answer to an ended session: the login page, with the reason shown."""
        self.session_ended = False
        return self._login_redirect()

    @rx.event
    async def logout(self):
        session_id = self._session_id
        if session_id:

            def revoke() -> None:
                with db.session_scope() as session:
                    accounts.revoke_session(session=session, session_id=session_id)

            await offloop.run(revoke)
        self._forget()
        self.session_ended = False
        return [rx.call_script(_FORGET_TOKEN), rx.redirect(routes.LOGIN)]


async def principal_for_page(state: rx.State, access: Permission | str = "member", *, activity: bool = True) -> Principal | None:
    """The one way an event acts for the user: the session checked on the server now.

    None when the tab is signed out, the session ended (the tab is then signed out with
    the reason) or the role may not ``access``. ``activity=False`` for the dashboard's
    own timers and watchers, which must not keep an unattended tab alive.
    """
    auth = await state.get_state(AuthState)
    return await auth.principal(access, activity=activity)


async def tab_session_id(state: rx.State) -> int:
    """The id of the tab's session (no credential by itself): what a signed recording link
    is bound to, so the link dies with the session. 0 when signed out."""
    auth = await state.get_state(AuthState)
    return auth._session_id


async def tenant_timezone(state: rx.State) -> str:
    auth = await state.get_state(AuthState)
    return auth.timezone()
