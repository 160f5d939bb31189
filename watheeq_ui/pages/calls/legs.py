"""The side panel's legs of a call, as the PBX recorded them: who rang and for how long, who
answered, the transfer, and who talked how long (services.pbx.ledger)."""

from __future__ import annotations

import reflex as rx
from pydantic import BaseModel

from services.models import CallLegPublic

from watheeq_ui import formatting
from watheeq_ui.components.ui import icon_either, name_text
from watheeq_ui.i18n import t, t_fmt


class LegView(BaseModel):
    who: str  # the agent's name, else the extension, else "—"
    extension: str
    started: str
    ring: str
    talk: str
    answered: bool
    transferred_by: str
    kind: str  # services.models.LegKind value


def leg_views(legs: list[CallLegPublic], tz: str) -> list[LegView]:
    return [
        LegView(
            who=leg.agent_name or leg.extension or "—",
            extension=leg.extension or "",
            started=formatting.local_time(leg.started_at, tz, "%H:%M:%S"),
            ring=formatting.duration(leg.ring_seconds),
            talk=formatting.duration(leg.talk_seconds),
            answered=leg.answered_at is not None,
            transferred_by=leg.transferred_by or "",
            kind=leg.kind,
        )
        for leg in legs
    ]


def _leg(leg: rx.Var) -> rx.Component:
    return rx.hstack(
        icon_either(leg.answered, "phone-call", "phone-missed", size=14, color=rx.cond(leg.answered, rx.color("green", 10), rx.color("gray", 10))),
        rx.vstack(
            rx.hstack(
                rx.text(name_text(leg.who), size="2", weight="medium"),
                rx.text(leg.extension, size="1", color_scheme="gray"),
                rx.badge(
                    rx.match(leg.kind, ("transfer", t("leg_kind_transfer")), ("answer", t("leg_kind_answer")), t("leg_kind_ring")),
                    size="1",
                    color_scheme=rx.match(leg.kind, ("transfer", "blue"), ("answer", "green"), "gray"),
                    data_testid="call-leg-kind",
                ),
                rx.spacer(),
                rx.text(leg.started, size="1", color_scheme="gray"),
                width="100%",
            ),
            rx.hstack(
                rx.text(t_fmt("leg_rang", s=leg.ring), size="1"),
                rx.text(rx.cond(leg.answered, t_fmt("leg_talked", s=leg.talk), t("leg_not_answered")), size="1"),
                rx.cond(leg.transferred_by != "", rx.text(t_fmt("leg_transferred_by", ext=leg.transferred_by), size="1", color_scheme="blue")),
                spacing="3",
            ),
            spacing="0",
            width="100%",
        ),
        width="100%",
        align="start",
        data_testid="call-leg",
    )


def legs_section(legs: rx.Var) -> rx.Component:
    """The legs of the panel's call; a sentence when the PBX has not reported it (yet)."""
    return rx.vstack(
        rx.text(t("call_legs"), weight="bold"),
        rx.cond(
            legs.length() > 0,
            rx.vstack(rx.foreach(legs, _leg), width="100%", spacing="2"),
            rx.text(t("no_legs"), size="2", color_scheme="gray"),
        ),
        width="100%",
        align="start",
        data_testid="call-legs",
    )
