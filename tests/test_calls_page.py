"""The call history page's state: one event sets any filter, and typed days become the service's range."""

from __future__ import annotations

import asyncio
from datetime import datetime
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest

from services.errors import Invalid
from services.models import CallDirection, CallStatus
from watheeq_ui.pages.calls.state import FILTERS, CallsState

RIYADH = ZoneInfo("Asia/Riyadh")


def _page(**values: object) -> SimpleNamespace:
    """The vars set_filter and _filters read, with a refetch that only counts its calls."""
    page = SimpleNamespace(
        date_from="", date_to="", direction="any", status="any", agent="any", client_id="", number="", oldest_first=False, refetched=0
    )
    for name, value in values.items():
        setattr(page, name, value)

    async def refilter() -> None:
        page.refetched += 1

    page._refilter = refilter
    return page


@pytest.mark.parametrize(("name", "value"), [("date_from", "2026-11-01"), ("date_to", "2026-11-30"), ("direction", "INBOUND"), ("status", "MISSED"), ("agent", "7"), ("number", "0501")])
def test_set_filter_changes_the_named_filter_and_shows_its_first_page(name, value):
    page = _page()
    asyncio.run(CallsState.set_filter.fn(page, name, value))
    assert getattr(page, name) == value and page.refetched == 1


@pytest.mark.parametrize("name", ["page", "rows", "total", "can_export", "panel_open", "client_id", "__class__"])
def test_set_filter_refuses_any_other_var_and_fetches_nothing(name):
    page = _page()
    before = dict(vars(page))
    asyncio.run(CallsState.set_filter.fn(page, name, "1"))
    assert vars(page) == before and page.refetched == 0


def test_the_filters_have_one_event_not_a_setter_each():
    assert set(FILTERS) == {"date_from", "date_to", "direction", "status", "agent", "number"}
    assert not {f"set_{name}" for name in FILTERS} & set(CallsState.event_handlers)


def test_typed_days_become_local_midnights_with_the_last_day_included():
    filters = CallsState._filters(_page(date_from="2026-11-01", date_to="2026-11-03", direction="OUTBOUND", status="ANSWERED", agent="4", number=" 050 "), "Asia/Riyadh")
    assert filters.date_from == datetime(2026, 11, 1, tzinfo=RIYADH)
    assert filters.date_to == datetime(2026, 11, 4, tzinfo=RIYADH)
    assert (filters.direction, filters.statuses, filters.agent_user_id, filters.number) == (CallDirection.OUTBOUND, [CallStatus.ANSWERED], 4, "050")


def test_no_filter_means_everything():
    filters = CallsState._filters(_page(), "Asia/Riyadh")
    assert (filters.date_from, filters.date_to, filters.direction, filters.statuses, filters.agent_user_id, filters.number) == (None, None, None, [], None, None)


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"date_from": "2026-02-30"}, "date_from"),
        ({"date_to": "31/01/2026"}, "date_to"),
        ({"date_from": "9999-12-31"}, "date_from"),
        ({"date_from": "2026-11-05", "date_to": "2026-11-04"}, "date_to"),
        ({"number": "abc"}, "number"),
    ],
)
def test_bad_filters_are_refused_naming_the_field(values, field):
    with pytest.raises(Invalid) as refused:
        CallsState._filters(_page(**values), "Asia/Riyadh")
    assert refused.value.field == field


def _counted(total: int, lower_bound: bool, page: int, has_next: bool) -> SimpleNamespace:
    return SimpleNamespace(total=total, total_is_lower_bound=lower_bound, page=page, has_next=has_next)


@pytest.mark.parametrize(
    ("total", "lower_bound", "page", "has_next", "pages"),
    [
        (120, False, 1, True, 3),  # counted: the pages are known
        (1000, True, 1, True, 20),  # "more than 1,000": at least the counted pages
        (1000, True, 20, True, 21),  # on the last counted page, the next one is there
        (1000, True, 35, True, 36),
        (1000, True, 36, False, 36),  # the end, past the bound
    ],
)
def test_past_the_bound_the_pages_go_on_while_there_is_a_next_one(total, lower_bound, page, has_next, pages):
    assert CallsState.computed_vars["pages"].fget(_counted(total, lower_bound, page, has_next)) == pages


def test_a_number_search_past_the_bound_reads_more_than_in_both_languages():
    from watheeq_ui.i18n import LABELS

    english, arabic = LABELS["calls_more_than"]
    assert english.format(n="1,000") == "More than 1,000 calls"
    assert arabic.format(n="1,000") == "أكثر من 1,000 مكالمة"
    assert all("{p}" in text and "{n}+" in text for text in LABELS["page_of_more"])
