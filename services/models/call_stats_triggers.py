"""The triggers that keep ``call_stats_hour`` equal to the calls, on SQLite and PostgreSQL.

Why triggers, and not a function every writer calls: calls are written by log_call, status
changes, softphone events, the PBX ledger (bulk Core statements), stale-call closing, the
audited delete, the ledger folding duplicate rows, foreign keys (a deleted user's calls and
legs become "no agent": ON DELETE SET NULL; a deleted firm's calls go with it), migrations
and tests' factories. A trigger sees every one of them, including the writes SQLAlchemy
never issues (foreign-key actions), so no writer can forget the rollups. Each trigger
applies the row's difference as one UPSERT inside the statement that changed the row: no
read-modify-write in Python, no round trip, and the rollup row is locked only by the
transaction that changes it (commits and rollbacks carry the rollups with the calls).

The invariant, for every firm, UTC hour h and agent a (0 for none), and the same for every
UTC day in ``call_stats_day`` (the twelve figures, without the hour's split columns)::

    Σ_s call_stats_hour(h, a, s) = Σ figures(call)   over calls started in h whose agent is a
                          + Σ talk(leg), #legs over answered legs whose agent is a, of calls started in h

Each trigger keeps it by subtracting the old row's share and adding the new one's, in a
shard no other transaction holds (:func:`shard_sql`: on PostgreSQL, transactions logging
calls of one agent at once lock different rows and never wait for each other's commit):

- ``call`` insert: + the call's figures. Update of a column a figure reads: − old, + new;
  when the start moves to another hour, its legs' talk moves with it. Delete (BEFORE, so the
  legs are still there): − the call and − its legs' talk; the legs' own delete triggers then
  find no call and do nothing (the order is the same on both databases: a cascade runs
  after the parent row is gone).
- ``call_leg`` insert / update / delete: ± the answered leg's talk, in the hour of its call.
- A firm being deleted: its calls' triggers find no tenant row and write nothing (its
  rollups go by their own ON DELETE CASCADE).

:func:`rebuild_sql` computes the same rows from scratch (the migration that introduced them;
tests compare both).
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa

from services.models.call_stats import (
    CALL_FIGURES,
    ROLLUP_FIGURES,
    ROLLUP_SERVICE_LEVEL_S,
    ROLLUP_SHARDS,
    SPLIT_MINUTES,
    CallStatsHour,
)

# Each level of rollups: (table, its time column, that column's value for a stored time, figures).
# The daily rows hold what a month's per-agent figures need without reading 24 rows a day.
# The call columns a figure reads: an update of any other column (notes, case, client, the
# updated_at of every event) changes no rollup and runs no trigger.
CALL_COLUMNS = ("tenant_id", "started_at", "agent_user_id", "direction", "status", "answered_at",
                "ring_seconds", "talk_seconds", "pbx_linked_id")
LEG_COLUMNS = ("tenant_id", "call_id", "agent_user_id", "answered_at", "talk_seconds")
TRIGGERS = ("call_stats_call_insert", "call_stats_call_update", "call_stats_call_delete",
            "call_stats_leg_insert", "call_stats_leg_update", "call_stats_leg_delete")
_TALK = ["agent_talk_seconds_sum", "agent_talk_count"]
# Writes during a firm's deletion (its calls and legs going by cascade, its users' SET NULL)
# must not add rows for a firm that is gone: every share but a new row's checks for it.
_TENANT = "EXISTS (SELECT 1 FROM tenant WHERE tenant.id = {r}.tenant_id)"


def hour_sql(dialect: str, ts: str) -> str:
    """The UTC hour a stored time falls in, as a value of ``call_stats_hour.hour_start``."""
    if dialect == "sqlite":
        # SQLAlchemy stores naive UTC text 'YYYY-MM-DD HH:MM:SS.ffffff': keep that shape so the
        # hour compares as text with the bound times of queries.
        return f"(substr({ts}, 1, 13) || ':00:00.000000')"
    return f"date_trunc('hour', {ts})"


def day_sql(dialect: str, ts: str) -> str:
    """The UTC day a stored time falls in, as a value of ``call_stats_day.day_start``."""
    if dialect == "sqlite":
        return f"(substr({ts}, 1, 10) || ' 00:00:00.000000')"
    return f"date_trunc('day', {ts})"


LEVELS: tuple[tuple[str, str, Callable[[str, str], str], tuple[str, ...]], ...] = (
    ("call_stats_hour", "hour_start", hour_sql, ROLLUP_FIGURES),
    ("call_stats_day", "day_start", day_sql, CALL_FIGURES),
)


def _minute(dialect: str, ts: str) -> str:
    if dialect == "sqlite":
        return f"CAST(substr({ts}, 15, 2) AS INTEGER)"
    return f"extract(minute from {ts})"


def _flag(condition: str) -> str:
    return f"CASE WHEN {condition} THEN 1 ELSE 0 END"


def _value(condition: str, value: str) -> str:
    return f"CASE WHEN {condition} THEN {value} ELSE 0 END"


def call_terms(dialect: str, r: str) -> dict[str, str]:
    """Each figure of one call row ``r`` (an alias: NEW, OLD, a table), as SQL."""
    inbound = f"{r}.direction = 'INBOUND'"
    answered = f"{r}.answered_at IS NOT NULL"
    answered_in = f"({inbound} AND {answered})"
    missed = f"({inbound} AND {r}.answered_at IS NULL AND {r}.status NOT IN ('RINGING', 'ANSWERED'))"
    ended = f"({answered} AND {r}.talk_seconds IS NOT NULL)"
    own_talk = f"({ended} AND {r}.pbx_linked_id IS NULL)"
    rung = f"({answered_in} AND {r}.ring_seconds IS NOT NULL)"
    terms = {
        "total": "1",
        "inbound": _flag(inbound),
        "answered": _flag(answered),
        "missed": _flag(missed),
        "answered_inbound": _flag(answered_in),
        "answered_inbound_within_20s": _flag(f"({answered_in} AND {r}.ring_seconds <= {ROLLUP_SERVICE_LEVEL_S})"),
        "ring_seconds_sum": _value(rung, f"{r}.ring_seconds"),
        "ring_count": _flag(rung),
        "talk_seconds_sum": _value(ended, f"{r}.talk_seconds"),
        "talk_count": _flag(ended),
        "agent_talk_seconds_sum": _value(own_talk, f"{r}.talk_seconds"),
        "agent_talk_count": _flag(own_talk),
    }
    minute = _minute(dialect, f"{r}.started_at")
    for m in SPLIT_MINUTES:
        terms[f"total_before_{m}"] = _flag(f"{minute} < {m}")
        terms[f"answered_before_{m}"] = _flag(f"({answered} AND {minute} < {m})")
        terms[f"missed_before_{m}"] = _flag(f"({missed} AND {minute} < {m})")
    assert tuple(terms) == ROLLUP_FIGURES
    return terms


# How a trigger picks the shard it adds to (:func:`trigger_ddl`): "none" before the tables had
# shards (cs01a1b2001r); "pid" the writing connection's, mod(pg_backend_pid(), ROLLUP_SHARDS)
# (sh01a1b2001s: connections whose ids fell in one shard still queued on its lock); "unlocked",
# now (see :func:`shard_sql`).
SHARD_MODES = ("none", "pid", "unlocked")

# Where a new row's shard comes from ("unlocked", when every row of its key is locked by other
# transactions): a sequence, so that no two transactions ever add the same new row (one would
# wait for the other's commit: a connection's own process id did collide, with a row of an
# earlier connection that another transaction held). ``shard`` is a SMALLINT: the values wrap,
# long after the rows of any one key were made (a key gets a new row only under contention).
SHARD_SEQUENCE = "call_stats_shard"
NEW_SHARD_MODULUS = 32768


def shard_sql(dialect: str, mode: str, table: str, slot: str, tenant: str, at: str, agent: str) -> str | None:
    """The shard (SQL) the row of ``table`` keyed (``tenant``, ``at``, ``agent``) is added to,
    or None when the tables have no shard (``mode`` "none"). SQLite has one writer: always 0.

    "unlocked" (PostgreSQL): a row of the key that no other transaction has locked (taken and
    locked at once, FOR UPDATE SKIP LOCKED; its own locked rows count as free), else a new row
    (:data:`SHARD_SEQUENCE`). No transaction waits for another's commit to add to an agent's
    hour, however many write it at once, and a key has only as many rows as transactions ever
    wrote it at the same moment (a row is added only when all were locked).
    """
    if mode == "none":
        return None
    if dialect == "sqlite":
        return "0"
    if mode == "pid":
        return f"mod(pg_backend_pid(), {ROLLUP_SHARDS})"
    assert mode == "unlocked", mode
    return (
        f"COALESCE((SELECT s.shard FROM {table} s WHERE s.tenant_id = {tenant} AND s.{slot} = {at}"
        f" AND s.agent_key = {agent} LIMIT 1 FOR UPDATE SKIP LOCKED), mod(nextval('{SHARD_SEQUENCE}'), {NEW_SHARD_MODULUS}))"
    )


def _key_values(dialect: str, mode: str, table: str, slot: str, tenant: str, at: str, agent: str) -> str:
    """The select list's key of a rollup row: firm, time, agent[, shard]."""
    shard = shard_sql(dialect, mode, table, slot, tenant, at, agent)
    return f"{tenant}, {at}, {agent}" + (f", {shard}" if shard is not None else "")


def _upsert(table: str, slot: str, columns: list[str], select: str, mode: str) -> str:
    """INSERT … ON CONFLICT adding the figures ``select`` gives (its columns: firm, time,
    agent, shard unless ``mode`` is "none", then ``columns``) to their rows of ``table``."""
    adds = ", ".join(f"{c} = {table}.{c} + excluded.{c}" for c in columns)
    key = f"tenant_id, {slot}, agent_key" + ("" if mode == "none" else ", shard")
    return f"INSERT INTO {table} ({key}, {', '.join(columns)}) {select} ON CONFLICT ({key}) DO UPDATE SET {adds}"


def _call_share(dialect: str, mode: str, r: str, sign: str, *, guard: bool = False) -> str:
    """± the figures of call row ``r`` in its hour's and day's rows of its agent."""
    terms = call_terms(dialect, r)
    where = f" WHERE {_TENANT.format(r=r)}" if guard else " WHERE true"
    statements = []
    for table, slot, slot_of, figures in LEVELS:
        values = ", ".join(f"{sign}{terms[c]}" if terms[c] == "1" else f"{sign}({terms[c]})" for c in figures)
        key = _key_values(dialect, mode, table, slot, f"{r}.tenant_id", slot_of(dialect, f"{r}.started_at"),
                          f"COALESCE({r}.agent_user_id, 0)")
        statements.append(_upsert(table, slot, list(figures), f"SELECT {key}, {values}{where}", mode))
    return "; ".join(statements)


def _legs_of_call(dialect: str, mode: str, r: str, sign: str, condition: str = "true") -> str:
    """± the answered legs' talk of call row ``r``, by leg agent, in the call's hour and day."""
    agent = "COALESCE(l.agent_user_id, 0)"
    statements = []
    for table, slot, slot_of, _ in LEVELS:
        # Summed per agent first: the shard's subquery then names the sums' columns (not a
        # grouped expression, which PostgreSQL refuses in a subquery).
        by_agent = (
            f"SELECT {r}.tenant_id AS tenant_id, {slot_of(dialect, f'{r}.started_at')} AS at, {agent} AS agent,"
            f" {sign}SUM(l.talk_seconds) AS talk, {sign}COUNT(*) AS legs"
            f" FROM call_leg l WHERE l.call_id = {r}.id AND l.answered_at IS NOT NULL AND {condition}"
            f" GROUP BY {agent}"
        )
        key = _key_values(dialect, mode, table, slot, "g.tenant_id", "g.at", "g.agent")
        # (WHERE: SQLite would read ON CONFLICT after a FROM as a join's ON.)
        statements.append(_upsert(table, slot, _TALK, f"SELECT {key}, g.talk, g.legs FROM ({by_agent}) AS g WHERE true", mode))
    return "; ".join(statements)


def _leg_share(dialect: str, mode: str, r: str, sign: str, *, guard: bool = False) -> str:
    """± one answered leg's talk (row ``r``), in the hour and day of its call; nothing once the call is gone."""
    statements = []
    for table, slot, slot_of, _ in LEVELS:
        key = _key_values(dialect, mode, table, slot, "c.tenant_id", slot_of(dialect, "c.started_at"),
                          f"COALESCE({r}.agent_user_id, 0)")
        select = (
            f"SELECT {key}, {sign}{r}.talk_seconds, {sign}1 FROM call c"
            f" WHERE c.id = {r}.call_id AND {r}.answered_at IS NOT NULL"
        )
        if guard:
            select += f" AND {_TENANT.format(r='c')}"
        statements.append(_upsert(table, slot, _TALK, select, mode))
    return "; ".join(statements)


def _changed(columns: tuple[str, ...], distinct: Callable[[str, str], str]) -> str:
    return " OR ".join(distinct(f"OLD.{c}", f"NEW.{c}") for c in columns)


def _hour_moved(dialect: str) -> str:
    return f"{hour_sql(dialect, 'OLD.started_at')} <> {hour_sql(dialect, 'NEW.started_at')}"


def trigger_ddl(dialect: str, *, shards: str = "unlocked") -> list[str]:
    """The statements that create the triggers (and on PostgreSQL their functions), adding
    to the shards as ``shards`` (:data:`SHARD_MODES`) says: the migrations that came before
    build theirs as they were."""
    if shards not in SHARD_MODES:
        raise ValueError(f"no shard mode {shards!r}")
    mode = shards
    if dialect == "sqlite":
        changed = _changed(CALL_COLUMNS, lambda a, b: f"{a} IS NOT {b}")
        leg_changed = _changed(LEG_COLUMNS, lambda a, b: f"{a} IS NOT {b}")
        moved = _hour_moved(dialect)
        old_tenant = _TENANT.format(r="OLD")
        return [
            f"CREATE TRIGGER IF NOT EXISTS call_stats_call_insert AFTER INSERT ON call BEGIN {_call_share(dialect, mode, 'NEW', '')}; END",
            f"CREATE TRIGGER IF NOT EXISTS call_stats_call_update AFTER UPDATE OF {', '.join(CALL_COLUMNS)} ON call"
            f" WHEN {changed} BEGIN {_call_share(dialect, mode, 'OLD', '-', guard=True)}; {_call_share(dialect, mode, 'NEW', '', guard=True)};"
            f" {_legs_of_call(dialect, mode, 'OLD', '-', moved + ' AND ' + old_tenant)};"
            f" {_legs_of_call(dialect, mode, 'NEW', '', moved + ' AND ' + old_tenant)}; END",
            f"CREATE TRIGGER IF NOT EXISTS call_stats_call_delete BEFORE DELETE ON call BEGIN"
            f" {_call_share(dialect, mode, 'OLD', '-', guard=True)};"
            f" {_legs_of_call(dialect, mode, 'OLD', '-', old_tenant)}; END",
            f"CREATE TRIGGER IF NOT EXISTS call_stats_leg_insert AFTER INSERT ON call_leg BEGIN {_leg_share(dialect, mode, 'NEW', '')}; END",
            f"CREATE TRIGGER IF NOT EXISTS call_stats_leg_update AFTER UPDATE OF {', '.join(LEG_COLUMNS)} ON call_leg"
            f" WHEN {leg_changed} BEGIN {_leg_share(dialect, mode, 'OLD', '-', guard=True)}; {_leg_share(dialect, mode, 'NEW', '', guard=True)}; END",
            f"CREATE TRIGGER IF NOT EXISTS call_stats_leg_delete AFTER DELETE ON call_leg BEGIN {_leg_share(dialect, mode, 'OLD', '-', guard=True)}; END",
        ]
    moved = _hour_moved(dialect)
    sequence = [f"CREATE SEQUENCE IF NOT EXISTS {SHARD_SEQUENCE}"] if mode == "unlocked" else []
    call_fn = f"""CREATE OR REPLACE FUNCTION call_stats_call() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    {_call_share(dialect, mode, 'NEW', '')};
  ELSIF NOT {_TENANT.format(r='OLD')} THEN
    NULL;  -- the firm is being deleted
  ELSIF TG_OP = 'UPDATE' THEN
    {_call_share(dialect, mode, 'OLD', '-')};
    {_call_share(dialect, mode, 'NEW', '')};
    IF {moved} THEN
      {_legs_of_call(dialect, mode, 'OLD', '-')};
      {_legs_of_call(dialect, mode, 'NEW', '')};
    END IF;
  ELSE
    {_call_share(dialect, mode, 'OLD', '-')};
    {_legs_of_call(dialect, mode, 'OLD', '-')};
  END IF;
  RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NULL END;
END $$"""
    leg_fn = f"""CREATE OR REPLACE FUNCTION call_stats_leg() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP IN ('UPDATE', 'DELETE') THEN
    {_leg_share(dialect, mode, 'OLD', '-', guard=True)};
  END IF;
  IF TG_OP IN ('INSERT', 'UPDATE') THEN
    {_leg_share(dialect, mode, 'NEW', '', guard=True)};
  END IF;
  RETURN NULL;
END $$"""
    changed = _changed(CALL_COLUMNS, lambda a, b: f"{a} IS DISTINCT FROM {b}")
    leg_changed = _changed(LEG_COLUMNS, lambda a, b: f"{a} IS DISTINCT FROM {b}")
    return [
        *sequence,
        call_fn,
        leg_fn,
        "CREATE OR REPLACE TRIGGER call_stats_call_insert AFTER INSERT ON call FOR EACH ROW EXECUTE FUNCTION call_stats_call()",
        f"CREATE OR REPLACE TRIGGER call_stats_call_update AFTER UPDATE OF {', '.join(CALL_COLUMNS)} ON call FOR EACH ROW"
        f" WHEN ({changed}) EXECUTE FUNCTION call_stats_call()",
        "CREATE OR REPLACE TRIGGER call_stats_call_delete BEFORE DELETE ON call FOR EACH ROW EXECUTE FUNCTION call_stats_call()",
        "CREATE OR REPLACE TRIGGER call_stats_leg_insert AFTER INSERT ON call_leg FOR EACH ROW EXECUTE FUNCTION call_stats_leg()",
        f"CREATE OR REPLACE TRIGGER call_stats_leg_update AFTER UPDATE OF {', '.join(LEG_COLUMNS)} ON call_leg FOR EACH ROW"
        f" WHEN ({leg_changed}) EXECUTE FUNCTION call_stats_leg()",
        "CREATE OR REPLACE TRIGGER call_stats_leg_delete AFTER DELETE ON call_leg FOR EACH ROW EXECUTE FUNCTION call_stats_leg()",
    ]


def drop_ddl(dialect: str) -> list[str]:
    if dialect == "sqlite":
        return [f"DROP TRIGGER IF EXISTS {name}" for name in TRIGGERS]
    tables = {"call": TRIGGERS[:3], "call_leg": TRIGGERS[3:]}
    return [
        *(f"DROP TRIGGER IF EXISTS {name} ON {table}" for table, names in tables.items() for name in names),
        "DROP FUNCTION IF EXISTS call_stats_call()",
        "DROP FUNCTION IF EXISTS call_stats_leg()",
        f"DROP SEQUENCE IF EXISTS {SHARD_SEQUENCE}",
    ]


def rebuild_sql(dialect: str, tenant_filter: str = "true", *, sharded: bool = True) -> list[str]:
    """Statements that fill the rollup tables from the calls and legs (the tables empty, or
    emptied of the firms ``tenant_filter`` selects; ``c`` is the call alias), in shard 0;
    ``sharded=False``: for the tables before they had shards."""
    terms = call_terms(dialect, "c")
    agent = "COALESCE(l.agent_user_id, 0)"
    statements = []
    for table, slot, slot_of, figures in LEVELS:
        at = slot_of(dialect, "c.started_at")
        sums = ", ".join(f"SUM({terms[c]})" for c in figures)
        statements.append(
            f"INSERT INTO {table} (tenant_id, {slot}, agent_key, {', '.join(figures)})"
            f" SELECT c.tenant_id, {at}, COALESCE(c.agent_user_id, 0), {sums} FROM call c WHERE {tenant_filter}"
            f" GROUP BY c.tenant_id, {at}, COALESCE(c.agent_user_id, 0)"
        )
        statements.append(_upsert(
            table, slot, _TALK,
            f"SELECT c.tenant_id, {at}, {agent}{', 0' if sharded else ''}, SUM(l.talk_seconds), COUNT(*)"
            f" FROM call_leg l JOIN call c ON c.id = l.call_id"
            f" WHERE l.answered_at IS NOT NULL AND {tenant_filter} GROUP BY c.tenant_id, {at}, {agent}",
            "pid" if sharded else "none",
        ))
    return statements


def _create(target: sa.MetaData, connection: sa.Connection, **_: object) -> None:
    if connection.dialect.name not in ("sqlite", "postgresql"):
        raise NotImplementedError(f"no rollup triggers for {connection.dialect.name}")
    for statement in trigger_ddl(connection.dialect.name):
        connection.exec_driver_sql(statement)


# create_all (tests on SQLite, the benches) creates them with the tables; migrations create
# them on every other database.
sa.event.listen(CallStatsHour.metadata, "after_create", _create)

__all__ = ["CALL_FIGURES", "drop_ddl", "rebuild_sql", "shard_sql", "trigger_ddl"]
