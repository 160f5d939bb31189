"""Reflex configuration: everything comes from the environment (and the local .env)."""

import reflex as rx
from reflex_base.plugins.sitemap import SitemapPlugin

from services import config as settings
from watheeq_ui.radix_styles import UsedRadixThemesPlugin

config = rx.Config(
    app_name="watheeq_ui",
    # The same variable the CLI, the API and the sidecar read: one database for all of them.
    db_url=settings.database_url(),
    # With Redis the backend may run several workers; without it, one worker and the disk state manager.
    redis_url=settings.get("REDIS_URL"),
    telemetry_enabled=False,
    # A signed-in dashboard has nothing for search engines to index.
    disable_plugins=[SitemapPlugin],
    plugins=[
        # Reflex's Radix Themes plugin, the stylesheet cut to the components compiled
        # (watheeq_ui/radix_styles.py).
        UsedRadixThemesPlugin(
            theme=rx.theme(accent_color="teal", gray_color="slate", radius="medium", scaling="100%"),
        ),
    ],
    show_built_with_reflex=False,
    # Reflex's default "*" with credentials reflects any Origin, on the REST API and the
    # state websocket alike: only the app's own frontend (or the configured origins) may call.
    cors_allowed_origins=settings.cors_origins(),
)
