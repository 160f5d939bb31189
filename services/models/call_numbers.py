"""Number search's dictionary: each firm's distinct call numbers, one row per suffix.

A call is searched by ``coalesce(remote_e164, remote_number)`` (its E.164 form, or the number
as dialled when it is no phone number), digits anywhere in it (``LIKE '%digits%'``). A string
contains ``digits`` exactly when one of its suffixes starts with them, so
:class:`CallNumber` holds, per firm and distinct number, its suffixes that start with a digit
and are at least :data:`MIN_FRAGMENT` long (plus the whole number, whatever its first
character, which marks the number as known): a search is one range read of the primary key
``(tenant_id, suffix, number)`` from ``suffix >= digits`` to ``suffix < digits || ':'``
(':' follows '9'), giving exactly the numbers a scan would find, and the calls of those
numbers come from ``ix_call_tenant_remote`` (services/call_center/call_history.py).

Kept by triggers on ``call`` (insert, and an update of either number), so every writer (log_call,
the PBX ledger's bulk insert, the seed, tests) keeps it in the same transaction at the cost of
one primary-key probe per call whose number is known. Rows are never removed when calls are:
a number without calls matches no call. Migration ns02a1b2010n builds it for existing calls.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from services.models.call_center import Call

# Shorter fragments match most of a firm's numbers; they are searched by the scan.
MIN_FRAGMENT = 3
# Longest number kept (CallBase.remote_number's limit; E.164 is at most 16).
MAX_NUMBER = 64
# The character after '9': the exclusive upper bound of the suffixes starting with some digits.
AFTER_DIGITS = ":"

# Byte order on PostgreSQL whatever the database's collation, so the range above is the
# prefix (SQLite's default BINARY collation already is).
_Text = sa.String(MAX_NUMBER).with_variant(sa.String(MAX_NUMBER, collation="C"), "postgresql")


class CallNumber(SQLModel, table=True):
    """One suffix of one distinct number of a firm's calls (see the module's docstring)."""

    __tablename__ = "call_number"
    __table_args__ = {"sqlite_with_rowid": False}

    tenant_id: int = Field(foreign_key="tenant.id", primary_key=True, ondelete="CASCADE")
    suffix: str = Field(sa_column=sa.Column(_Text, primary_key=True))
    number: str = Field(sa_column=sa.Column(_Text, primary_key=True))


_VALUE = "coalesce({row}.remote_e164, {row}.remote_number)"
# Which positions of a number start a kept suffix: the first, and those starting a digit
# with at least MIN_FRAGMENT characters from there.
_KEPT = "(p = 1 OR (p <= length({v}) - {short} AND substr({v}, p, 1) BETWEEN '0' AND '9'))"
# SQLite has no generate_series and no WITH inside a trigger: the positions as a union.
_POSITIONS_SQLITE = " UNION ALL ".join(f"SELECT {i} AS p" for i in range(1, MAX_NUMBER + 1))


def _kept(v: str) -> str:
    return _KEPT.format(v=v, short=MIN_FRAGMENT - 1)


def _sqlite_trigger(name: str, event: str) -> str:
    v = _VALUE.format(row="new")
    return (
        f"CREATE TRIGGER IF NOT EXISTS {name} AFTER {event} ON call "
        f"WHEN {v} IS NOT NULL AND NOT EXISTS (SELECT 1 FROM call_number "
        f"WHERE tenant_id = new.tenant_id AND suffix = {v} AND number = {v}) BEGIN "
        f"INSERT OR IGNORE INTO call_number (tenant_id, suffix, number) "
        f"SELECT new.tenant_id, substr({v}, p), {v} FROM ({_POSITIONS_SQLITE}) WHERE {_kept(v)}; END"
    )


SQLITE_CREATE = (
    _sqlite_trigger("call_number_ai", "INSERT"),
    _sqlite_trigger("call_number_au", "UPDATE OF remote_e164, remote_number"),
)
SQLITE_DROP = ("DROP TRIGGER IF EXISTS call_number_ai", "DROP TRIGGER IF EXISTS call_number_au")

POSTGRES_CREATE = (
    f"""CREATE OR REPLACE FUNCTION call_number_add() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE v text := {_VALUE.format(row="NEW")};
BEGIN
  IF v IS NOT NULL AND NOT EXISTS (
      SELECT 1 FROM call_number WHERE tenant_id = NEW.tenant_id AND suffix = v AND number = v) THEN
    INSERT INTO call_number (tenant_id, suffix, number)
    SELECT NEW.tenant_id, substr(v, p), v FROM generate_series(1, length(v)) AS p WHERE {_kept("v")}
    ON CONFLICT DO NOTHING;
  END IF;
  RETURN NULL;
END $$""",
    "CREATE TRIGGER call_number_ai AFTER INSERT ON call FOR EACH ROW EXECUTE FUNCTION call_number_add()",
    "CREATE TRIGGER call_number_au AFTER UPDATE OF remote_e164, remote_number ON call "
    "FOR EACH ROW EXECUTE FUNCTION call_number_add()",
)
POSTGRES_DROP = (
    "DROP TRIGGER IF EXISTS call_number_ai ON call",
    "DROP TRIGGER IF EXISTS call_number_au ON call",
    "DROP FUNCTION IF EXISTS call_number_add()",
)

# The dictionary of the calls already there (the migration; a benchmark's older data set).
_FILL = (
    "INSERT INTO call_number (tenant_id, suffix, number) "
    "SELECT v.tenant_id, substr(v.n, p), v.n FROM "
    "(SELECT DISTINCT tenant_id, " + _VALUE.format(row="call") + " AS n FROM call) AS v "
    "JOIN {positions} ON {kept} WHERE v.n IS NOT NULL"
)
SQLITE_FILL = "INSERT OR IGNORE" + _FILL.format(positions=f"({_POSITIONS_SQLITE}) AS s", kept=_kept("v.n"))[len("INSERT"):]
POSTGRES_FILL = (
    _FILL.format(positions=f"generate_series(1, {MAX_NUMBER}) AS p", kept=_kept("v.n")) + " ON CONFLICT DO NOTHING"
)


def create_statements(dialect: str) -> tuple[str, ...]:
    return SQLITE_CREATE if dialect == "sqlite" else POSTGRES_CREATE


def drop_statements(dialect: str) -> tuple[str, ...]:
    return SQLITE_DROP if dialect == "sqlite" else POSTGRES_DROP


def fill_statement(dialect: str) -> str:
    return SQLITE_FILL if dialect == "sqlite" else POSTGRES_FILL


# Created after ``call`` and dropped before it: the table's triggers are on ``call``.
CallNumber.__table__.add_is_dependent_on(Call.__table__)  # type: ignore[attr-defined]

# The triggers come with the table wherever it is created from the models (tests, benchmarks);
# the migration creates them itself.
for _dialect in ("sqlite", "postgresql"):
    for _statement in create_statements(_dialect):
        sa.event.listen(CallNumber.__table__, "after_create", sa.DDL(_statement).execute_if(dialect=_dialect))
    for _statement in drop_statements(_dialect):
        sa.event.listen(CallNumber.__table__, "before_drop", sa.DDL(_statement).execute_if(dialect=_dialect))
