"""The frame around every signed-in page, and the page decorator that checks access.

``template(route=..., access=...)`` registers the page with an on_load that first
resolves the session (or redirects to the login page) and then runs the page's own
loader. The page's content is only rendered for a role that may see it; the loaders
check the role again on the server, so typing a URL never reveals data.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import reflex as rx

from watheeq_ui import routes
from watheeq_ui.components.softphone import softphone_slot
from watheeq_ui.components.softphone.state import SoftphoneState
from watheeq_ui.components.ui import name_text, role_label
from watheeq_ui.i18n import t
from watheeq_ui.state.auth import PAGE_LOADERS, SESSION_CHECK_MS, AuthState
from watheeq_ui.state.lang import LangState
from watheeq_ui.state.whatsapp_line import WhatsappLineState

NAV: list[tuple[str, str, str, str]] = [
    # (route, label key, icon, access)
    (routes.DASHBOARD, "nav_dashboard", "layout-dashboard", "member"),
    (routes.CALLS, "nav_calls", "phone", "member"),
    (routes.CALLBACKS, "nav_callbacks", "phone-missed", "member"),
    (routes.WALLBOARD, "nav_wallboard", "monitor", "supervisor"),
    (routes.AGENT_REPORT, "rep_title", "chart-no-axes-column", "supervisor"),
    (routes.CLIENTS, "nav_clients", "users", "member"),
    (routes.WHATSAPP, "nav_whatsapp", "message-circle", "member"),
    (routes.EXTENSIONS, "nav_extensions", "settings-2", "admin"),
    (routes.USERS, "nav_users", "user-cog", "admin"),
    (routes.RECORDINGS, "nav_recordings", "file-audio", "admin"),
    (routes.ACCOUNT, "nav_account", "key-round", "member"),
]


def _allowed(access: str) -> rx.Var | bool:
    if access == "admin":
        return AuthState.is_admin
    if access == "supervisor":
        return AuthState.is_supervisor
    return True


def apply_direction() -> rx.event.EventSpec:
    # Dialogs and drawers render in portals outside the page box: the document itself
    # must carry the direction, not only the page's root element.
    return rx.call_script(
        "const l = localStorage.getItem('watheeq_lang') || 'en';"
        "document.documentElement.dir = l === 'ar' ? 'rtl' : 'ltr';"
        "document.documentElement.lang = l;"
    )


def public_page(*children: rx.Component) -> rx.Component:
    """The frame of a page for someone not signed in (sign-in, set a password): centred on
    the app's background, in the chosen language and direction."""
    return rx.center(
        rx.vstack(*children, align="center", spacing="5"),
        dir=LangState.direction,
        lang=LangState.lang,
        min_height="100vh",
        background=f"linear-gradient(160deg, {rx.color('teal', 3)} 0%, {rx.color('gray', 1)} 55%)",
        on_mount=apply_direction(),
    )


def _nav_item(route: str, label_key: str, icon: str, access: str) -> rx.Component:
    active = rx.State.router.page.path == route if route != routes.CLIENTS else rx.State.router.page.path.contains(route)
    link = rx.link(
        rx.hstack(
            rx.icon(icon, size=18),
            rx.text(t(label_key), size="3"),
            align="center",
            spacing="3",
            padding_x="0.75rem",
            padding_y="0.55rem",
            border_radius="8px",
            width="100%",
            background=rx.cond(active, rx.color("teal", 4), "transparent"),
            color=rx.cond(active, rx.color("teal", 12), rx.color("gray", 11)),
            _hover={"background": rx.color("gray", 4)},
        ),
        href=route,
        underline="none",
        width="100%",
        data_testid=f"nav-{label_key}",
    )
    allowed = _allowed(access)
    return link if allowed is True else rx.cond(allowed, link)


def sidebar() -> rx.Component:
    # The column (its background and edge) runs the full height of a long page; the
    # navigation inside it stays in view while the page scrolls.
    return rx.box(
        _sidebar_content(),
        width="240px",
        min_width="240px",
        align_self="stretch",
        background=rx.color("gray", 2),
        border_inline_end=f"1px solid {rx.color('gray', 5)}",
        data_testid="sidebar",
    )


def _sidebar_content() -> rx.Component:
    return rx.vstack(
        rx.hstack(
            rx.box(rx.icon("scale", size=20, color="white"), background=rx.color("teal", 9), padding="0.45rem", border_radius="9px"),
            rx.vstack(
                rx.text(t("app_name"), weight="bold", size="4"),
                rx.text(AuthState.tenant_name, size="1", color_scheme="gray", data_testid="tenant-name"),
                spacing="0",
            ),
            align="center",
            spacing="3",
            padding_bottom="1rem",
        ),
        *[_nav_item(*item) for item in NAV],
        rx.spacer(),
        rx.divider(),
        rx.hstack(
            rx.avatar(fallback=AuthState.user_name.to(str)[:1], size="2", radius="full", color_scheme="teal"),
            rx.vstack(
                rx.text(name_text(AuthState.user_name), size="2", weight="medium", data_testid="user-name"),
                rx.text(
                    role_label(AuthState.role),
                    size="1",
                    color_scheme="gray",
                    data_testid="user-role",
                ),
                spacing="0",
                overflow="hidden",
            ),
            align="center",
            width="100%",
        ),
        rx.button(
            rx.icon("log-out", size=16),
            t("logout"),
            on_click=AuthState.logout,
            variant="soft",
            color_scheme="gray",
            width="100%",
            data_testid="logout",
        ),
        width="100%",
        height="100vh",
        position="sticky",
        top="0",
        padding="1.25rem",
        spacing="2",
    )


def whatsapp_badge() -> rx.Component:
    color = rx.match(
        WhatsappLineState.status,
        ("CONNECTED", "green"),
        ("CONNECTING", "amber"),
        ("QR_PENDING", "amber"),
        ("ERROR", "red"),
        "gray",
    )
    label = rx.cond(WhatsappLineState.service_down, t("wa_service_down"), rx.match(
        WhatsappLineState.status,
        ("CONNECTED", t("wa_CONNECTED")),
        ("CONNECTING", t("wa_CONNECTING")),
        ("QR_PENDING", t("wa_QR_PENDING")),
        ("DISCONNECTED", t("wa_DISCONNECTED")),
        ("ERROR", t("wa_ERROR")),
        t("wa_unknown"),
    ))
    return rx.hstack(
        rx.badge(
            rx.icon("message-circle", size=14),
            t("wa_line"),
            ": ",
            label,
            color_scheme=color,
            variant="soft",
            size="2",
            data_testid="whatsapp-status",
        ),
        rx.cond(WhatsappLineState.simulator, rx.badge(t("simulator"), color_scheme="purple", variant="outline")),
        spacing="2",
    )


def header(title_key: str) -> rx.Component:
    return rx.hstack(
        rx.heading(t(title_key), size="6", weight="bold", data_testid="page-title"),
        rx.spacer(),
        whatsapp_badge(),
        rx.button(
            rx.icon("languages", size=16),
            t("language"),
            on_click=LangState.toggle_lang,
            variant="outline",
            color_scheme="gray",
            data_testid="toggle-language",
        ),
        rx.color_mode.button(variant="outline", color_scheme="gray", data_testid="toggle-theme"),
        align="center",
        spacing="3",
        width="100%",
        padding_x="2rem",
        padding_y="1rem",
        border_bottom=f"1px solid {rx.color('gray', 5)}",
        background=rx.color("gray", 1),
        position="sticky",
        top="0",
        z_index="5",
    )


def not_allowed() -> rx.Component:
    return rx.center(
        rx.card(
            rx.vstack(
                rx.icon("shield-x", size=36, color=rx.color("red", 9)),
                rx.heading(t("not_allowed"), size="5", data_testid="not-allowed"),
                rx.text(t("not_allowed_body"), color_scheme="gray", text_align="center"),
                rx.link(rx.button(t("back_home"), variant="soft"), href=routes.DASHBOARD),
                align="center",
                spacing="3",
                padding="1.5rem",
            ),
            max_width="440px",
        ),
        padding_top="4rem",
        width="100%",
    )


def loading() -> rx.Component:
    return rx.center(rx.spinner(size="3"), padding_top="4rem", width="100%")


def session_ended() -> rx.Component:
    """Shown for the instant between a failed session check and the login page."""
    return rx.center(rx.spinner(size="3"), on_mount=AuthState.to_login, padding_top="4rem", width="100%", data_testid="session-ended")


def shell(content: rx.Component, title_key: str) -> rx.Component:
    return rx.box(
        rx.hstack(
            sidebar(),
            rx.box(
                header(title_key),
                rx.box(content, padding="2rem", max_width="1400px", width="100%"),
                flex="1",
                min_width="0",
            ),
            spacing="0",
            align="start",
            width="100%",
        ),
        softphone_slot(),
        # A session revoked elsewhere, a disabled user or an idle tab, and the line's status in
        # the header, are pushed by the server (watheeq_ui/live_tabs.py); only a call in
        # progress tells the server, now and then, that the user is active.
        rx.moment(interval=SESSION_CHECK_MS, on_change=SoftphoneState.keep_alive_while_talking, display="none"),
        rx.el.span(AuthState.worker, data_testid="worker-pid", display="none"),
        dir=LangState.direction,
        lang=LangState.lang,
        min_height="100vh",
        background=rx.color("gray", 1),
        on_mount=apply_direction(),
    )


def template(
    *,
    route: str,
    title_key: str,
    access: str = "member",
    on_load: rx.event.EventType[()] | None = None,
) -> Callable[[Callable[[], rx.Component]], Callable[[], rx.Component]]:
    """Register a signed-in page: session check, role guard, sidebar, header, softphone slot."""
    loaders: Sequence = on_load if isinstance(on_load, list | tuple) else ([on_load] if on_load else [])
    # They run once the session is known (see AuthState.open_page), one after the other on
    # the server inside that event, whose one update carries them all (AuthState._run_loaders):
    # the page's own data first, the header's WhatsApp line after it.
    PAGE_LOADERS[route] = [*loaders, WhatsappLineState.refresh]

    def decorator(page_content: Callable[[], rx.Component]) -> Callable[[], rx.Component]:
        allowed = _allowed(access)

        @rx.page(route=route, title=t("app_name"), on_load=AuthState.open_page(route))
        def page() -> rx.Component:
            body = page_content() if allowed is True else rx.cond(allowed, page_content(), not_allowed())
            return rx.cond(
                AuthState.signed_in,
                shell(body, title_key),
                rx.cond(AuthState.session_ended, session_ended(), loading()),
            )

        page.__name__ = page_content.__name__
        return page

    return decorator
