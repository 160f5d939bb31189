"""The Reflex app: the dashboard pages plus the REST API mounted into the same backend."""

import reflex as rx

import services.models  # noqa: F401  (every table registered for `reflex db`)
from watheeq_ui import background, exports, live_tabs, pages  # noqa: F401  (importing registers every page)
from watheeq_ui.api.app import api
from watheeq_ui.components import direction
from watheeq_ui.components.softphone.head import softphone_head_script
from watheeq_ui.i18n import t

app = rx.App(
    # FastAPI first (its /api/v1 routes), then the CSV export downloads; Reflex inside both.
    api_transformer=[api, exports.download_app],
    stylesheets=["/watheeq.css"],
    # The phone's inline script starts it while the head is parsed, before the app's bundle.
    head_components=[rx.el.link(rel="icon", href="/favicon.svg", type="image/svg+xml"), softphone_head_script()],
    # Tables, selects and menus read their direction from Radix's context, not the page.
    extra_app_wraps=direction.app_wraps(),
    # The toasts' region is announced by name: in the chosen language.
    toaster=rx.toast.provider(custom_attrs={"containerAriaLabel": t("notifications")}),
)
# Closes the calls no browser will ever finish (page closed mid-call, agent gone).
app.register_lifespan_task(background.close_stale_calls_periodically)
# One listener per worker: every process's changes pushed to this worker's open tabs.
app.register_lifespan_task(live_tabs.push_live_changes)
# Marks agents Offline when their tab stops beating, ends wrap-ups on time (services.presence).
app.register_lifespan_task(background.sweep_presence_periodically)
# In development beside the PBX lab: Away agents are not rung by the lab's ring group.
app.register_lifespan_task(background.follow_presence_in_dev_pbx)
# ... and an agent whose extension the lab no longer holds registered is Offline (one reader per worker).
app.register_lifespan_task(background.follow_pbx_registrations)
# Deletes recordings past each firm's retention period, once a day (legal holds kept).
app.register_lifespan_task(background.purge_recordings_daily)
