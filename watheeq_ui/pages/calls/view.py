"""The call history's page: filters, the table, the pager and the side panel of one call."""

from __future__ import annotations

import reflex as rx

from watheeq_ui import routes
from watheeq_ui.components.ui import card, date_field, direction_icon, empty_state, field_error, name_text, status_badge
from watheeq_ui.i18n import t, t_fmt
from watheeq_ui.layout import template
from watheeq_ui.pages.calls.panel import call_panel
from watheeq_ui.pages.calls.state import STATUSES, CallsState
from watheeq_ui.state.auth import AuthState



def _setter(name: str):
    """The change handler of one filter field."""
    return lambda value: CallsState.set_filter(name, value)


def _select(value: rx.Var, on_change, items: list[tuple[str, rx.Var | str]], test_id: str, width: str = "150px") -> rx.Component:
    return rx.select.root(
        rx.select.trigger(width=width, data_testid=test_id),
        rx.select.content(*[rx.select.item(label, value=v) for v, label in items]),
        value=value,
        on_change=on_change,
    )


def _filter_field(label_key: str, control: rx.Component, error_key: str | None = None) -> rx.Component:
    return rx.vstack(
        rx.text(t(label_key), size="1", weight="medium", color_scheme="gray"),
        control,
        field_error(CallsState.errors.get(error_key, "")) if error_key else rx.fragment(),
        spacing="1",
    )


def _client_picker() -> rx.Component:
    return rx.box(
        rx.cond(
            CallsState.client_id != "",
            rx.badge(
                CallsState.client_label,
                rx.icon("x", size=12, cursor="pointer", on_click=CallsState.choose_client("", "")),
                size="2",
                variant="soft",
                height="32px",
                data_testid="filter-client-chosen",
            ),
            rx.input(
                placeholder=t("all_clients"),
                value=CallsState.client_query,
                on_change=CallsState.search_clients.debounce(250),
                width="180px",
                data_testid="filter-client",
            ),
        ),
        rx.cond(
            CallsState.client_options.length() > 0,
            rx.card(
                rx.vstack(
                    rx.foreach(
                        CallsState.client_options,
                        lambda o: rx.button(
                            o.label,
                            variant="ghost",
                            width="100%",
                            justify="start",
                            on_click=CallsState.choose_client(o.value, o.label),
                        ),
                    ),
                    spacing="1",
                ),
                position="absolute",
                z_index="20",
                width="280px",
                margin_top="4px",
            ),
        ),
        position="relative",
    )


def _filters() -> rx.Component:
    statuses = [("any", t("any"))] + [(s, t(f"st_{s}")) for s in STATUSES]
    return card(
        rx.flex(
            _filter_field(
                "date_from",
                date_field(CallsState.date_from, _setter("date_from"), "filter-from", "date_from"),
                "date_from",
            ),
            _filter_field(
                "date_to",
                date_field(CallsState.date_to, _setter("date_to"), "filter-to", "date_to"),
                "date_to",
            ),
            _filter_field(
                "direction",
                _select(
                    CallsState.direction,
                    _setter("direction"),
                    [("any", t("any")), ("INBOUND", t("dir_INBOUND")), ("OUTBOUND", t("dir_OUTBOUND"))],
                    "filter-direction",
                    "130px",
                ),
            ),
            _filter_field("status", _select(CallsState.status, _setter("status"), statuses, "filter-status", "140px")),
            rx.cond(
                AuthState.is_supervisor,
                _filter_field(
                    "agent",
                    rx.select.root(
                        rx.select.trigger(width="170px", data_testid="filter-agent"),
                        rx.select.content(
                            rx.select.item(t("all_agents"), value="any"),
                            rx.foreach(CallsState.agents, lambda o: rx.select.item(o.label, value=o.value)),
                        ),
                        value=CallsState.agent,
                        on_change=_setter("agent"),
                    ),
                ),
            ),
            _filter_field("client", _client_picker()),
            _filter_field(
                "number",
                rx.input(
                    rx.input.slot(rx.icon("search", size=14)),
                    placeholder=t("search_number"),
                    value=CallsState.number,
                    on_change=lambda value: CallsState.set_filter("number", value).debounce(350),
                    width="170px",
                    data_testid="filter-number",
                ),
                "number",
            ),
            rx.vstack(
                rx.text("\u00a0", size="1"),
                rx.button(rx.icon("x", size=14), t("clear_filters"), variant="ghost", color_scheme="gray", on_click=CallsState.clear_filters),
                spacing="1",
            ),
            wrap="wrap",
            spacing="4",
            align="start",
        ),
    )


def _order_label() -> rx.Var:
    return rx.cond(CallsState.oldest_first, t("oldest_first"), t("newest_first"))


def _time_header() -> rx.Component:
    return rx.table.column_header_cell(
        rx.button(
            t("started"),
            rx.cond(CallsState.oldest_first, rx.icon("arrow-up", size=14), rx.icon("arrow-down", size=14)),
            variant="ghost",
            color_scheme="gray",
            size="1",
            on_click=CallsState.toggle_order,
            title=_order_label(),
            aria_label=_order_label(),
            data_testid="sort-started",
            data_order=rx.cond(CallsState.oldest_first, "oldest", "newest"),
        ),
        aria_sort=rx.cond(CallsState.oldest_first, "ascending", "descending"),
    )


def _table() -> rx.Component:
    headers = ["direction", "remote_number", "client", "agent", "status", "duration", "case"]
    return rx.table.root(
        rx.table.header(rx.table.row(_time_header(), *[rx.table.column_header_cell(t(h)) for h in headers])),
        rx.table.body(
            rx.foreach(
                CallsState.rows,
                lambda r: rx.table.row(
                    rx.table.cell(r.started),
                    rx.table.cell(direction_icon(r.direction)),
                    rx.table.cell(rx.text(r.remote, dir="ltr", as_="span")),
                    rx.table.cell(name_text(r.client)),
                    rx.table.cell(name_text(r.agent)),
                    rx.table.cell(status_badge(r.status)),
                    rx.table.cell(r.duration),
                    rx.table.cell(name_text(r.case)),
                    class_name="wq-row",
                    data_selected=(CallsState.panel_open & (CallsState.call.id == r.id)).to_string(),
                    on_click=CallsState.open_call(r.id),
                    data_testid="call-row",
                ),
            ),
        ),
        variant="ghost",
        size="2",
        width="100%",
        data_testid="calls-table",
    )


def _pager() -> rx.Component:
    return rx.hstack(
        rx.text(
            rx.cond(
                CallsState.total_is_lower_bound,
                t_fmt("calls_more_than", n=CallsState.total_label),
                t_fmt("calls_total", n=CallsState.total_label),
            ),
            size="2",
            color_scheme="gray",
            data_testid="calls-total",
        ),
        rx.spacer(),
        rx.text(
            rx.cond(
                CallsState.total_is_lower_bound,
                t_fmt("page_of_more", p=CallsState.page, n=CallsState.pages),
                t_fmt("page_of", p=CallsState.page, n=CallsState.pages),
            ),
            size="2",
            color_scheme="gray",
            data_testid="page-of",
        ),
        rx.icon_button(rx.icon("chevrons-left", size=16), variant="soft", disabled=CallsState.page <= 1, on_click=CallsState.go_to_page(1)),
        rx.icon_button(
            rx.icon("chevron-left", size=16),
            variant="soft",
            disabled=CallsState.page <= 1,
            on_click=CallsState.go_to_page(CallsState.page - 1),
            data_testid="page-prev",
        ),
        rx.foreach(
            CallsState.page_numbers,
            lambda n: rx.button(
                n,
                variant=rx.cond(n == CallsState.page, "solid", "soft"),
                on_click=CallsState.go_to_page(n),
                min_width="36px",
                data_testid="page-button",
            ),
        ),
        rx.icon_button(
            rx.icon("chevron-right", size=16),
            variant="soft",
            disabled=CallsState.page >= CallsState.pages,
            on_click=CallsState.go_to_page(CallsState.page + 1),
            data_testid="page-next",
        ),
        rx.icon_button(
            rx.icon("chevrons-right", size=16),
            variant="soft",
            disabled=CallsState.page >= CallsState.pages,
            on_click=CallsState.go_to_page(CallsState.pages),
            data_testid="page-last",
        ),
        align="center",
        spacing="2",
        width="100%",
        dir="ltr",
    )


@template(route=routes.CALLS, title_key="nav_calls", on_load=CallsState.load)
def calls() -> rx.Component:
    return rx.vstack(
        _filters(),
        card(
            rx.vstack(
                rx.hstack(
                    rx.text(_order_label(), size="2", color_scheme="gray", data_testid="calls-order"),
                    rx.spacer(),
                    rx.cond(
                        CallsState.exporting,
                        rx.hstack(
                            rx.spinner(size="2"),
                            rx.text(t_fmt("exporting", n=CallsState.export_done), size="2", data_testid="export-progress"),
                            rx.progress(value=CallsState.export_done, max=rx.cond(CallsState.export_total > 0, CallsState.export_total, 1), width="120px"),
                            align="center",
                        ),
                    ),
                    rx.cond(
                        CallsState.can_export,
                        rx.button(
                            rx.icon("download", size=14),
                            t("export_csv"),
                            on_click=CallsState.export_csv,
                            disabled=CallsState.exporting,
                            variant="soft",
                            data_testid="export-csv",
                        ),
                    ),
                    width="100%",
                    align="center",
                ),
                rx.cond(CallsState.rows.length() > 0, _table(), empty_state("no_calls_match", "phone-off")),
                _pager(),
                width="100%",
            ),
        ),
        call_panel(),
        spacing="4",
        width="100%",
    )
