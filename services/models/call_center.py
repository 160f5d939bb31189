"""The call center: PBX settings, SIP extensions, calls with their notes, recordings and
and the DTOs of the call log (statistics and their hourly roll-ups: :mod:`services.models.call_stats`).

Families: ``SipExtensionBase`` (table ``SipExtension``, ``ExtensionAssign``, ``ExtensionPublic``),
``CallBase`` (table ``Call``, ``CallCreate``, ``CallUpdate``, ``CallPublic``) and
``CallNoteBase`` (table ``CallNote``, ``CallNotePublic``); their limits are declared once there.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from services.models.base import Input, Labelled, TenantOwned, enum_col, max_length, ts_field


class CallDirection(str, enum.Enum):
    INBOUND = "INBOUND"
    OUTBOUND = "OUTBOUND"


class CallStatus(str, enum.Enum):
    RINGING = "RINGING"
    ANSWERED = "ANSWERED"
    COMPLETED = "COMPLETED"
    MISSED = "MISSED"
    REJECTED = "REJECTED"
    BUSY = "BUSY"
    FAILED = "FAILED"
    NO_ANSWER = "NO_ANSWER"


# A call is open while RINGING or ANSWERED; every other status is final.
OPEN_CALL_STATUSES = frozenset({CallStatus.RINGING, CallStatus.ANSWERED})


UNANSWERED_CALL_STATUSES = frozenset(
    {CallStatus.MISSED, CallStatus.REJECTED, CallStatus.BUSY, CallStatus.FAILED, CallStatus.NO_ANSWER}
)


class CallOrder(str, enum.Enum):
    """The call history's order by start time (ties by id, in the same direction)."""

    NEWEST_FIRST = "NEWEST_FIRST"
    OLDEST_FIRST = "OLDEST_FIRST"


class PbxSettings(TenantOwned, table=True):
    __tablename__ = "pbx_settings"
    __table_args__ = (sa.UniqueConstraint("tenant_id", name="uq_pbx_settings_tenant"),)

    id: int | None = Field(default=None, primary_key=True)
    host: str = Field(max_length=253)
    # "wss" (TLS) for a PBX on the network; "ws" only for one on this machine's loopback,
    # which a browser may reach unencrypted from an http://localhost page.
    transport: str = Field(default="wss", max_length=3, sa_column_kwargs={"server_default": "wss"})
    wss_port: int = Field(default=8089)
    wss_path: str = Field(default="/ws", max_length=128)
    sip_domain: str = Field(default="", max_length=253)
    # The firm's public number (E.164, "+966110000000"): calls to it from the trunk ring the
    # firm's ring group. Empty when the firm has none.
    did: str = Field(default="", max_length=16, sa_column_kwargs={"server_default": ""})
    # JSON list of {"urls": ..., "username"?: ..., "credential"?: ...} (RTCIceServer shape).
    ice_servers: list[dict[str, Any]] = Field(default_factory=list, sa_column=sa.Column(sa.JSON, nullable=False))
    # TURN credentials are secrets: stored encrypted, merged into ice_servers only for a softphone.
    turn_credential_encrypted: str | None = Field(default=None, max_length=512)
    # Where the firm's call records come from: "" (none: only the softphone logs calls),
    # "lab" (the PBX lab's accounting) or "ucm" (the UCM6301's HTTPS API and real-time output).
    cdr_source: str = Field(default="", max_length=8, sa_column_kwargs={"server_default": ""})
    # UCM HTTPS API: base URL (https://ucm:8089), API user and its password (encrypted like
    # SIP passwords), and the TCP port this side listens on for the UCM's real-time output.
    api_url: str = Field(default="", max_length=512, sa_column_kwargs={"server_default": ""})
    api_user: str = Field(default="", max_length=64, sa_column_kwargs={"server_default": ""})
    api_password_encrypted: str | None = Field(default=None, max_length=512)
    realtime_port: int | None = Field(default=None)
    # Recordings older than this are deleted daily, except those of calls on a case on legal hold.
    recording_retention_days: int = Field(default=365, sa_column_kwargs={"server_default": "365"})
    updated_at: datetime = ts_field(nullable=False, default_now=True)


class SipExtensionBase(Labelled):
    labels = {"extension": "the extension", "display_name": "the display name"}

    extension: str = Field(max_length=16)
    display_name: str = Field(default="", max_length=100)


class SipExtension(SipExtensionBase, TenantOwned, table=True):
    __tablename__ = "sip_extension"
    __table_args__ = (
        sa.UniqueConstraint("tenant_id", "extension", name="uq_sip_extension_tenant_number"),
        sa.UniqueConstraint("user_id", name="uq_sip_extension_user"),
    )

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="user.id", ondelete="CASCADE")
    password_encrypted: str = Field(max_length=512)
    created_at: datetime = ts_field(nullable=False, default_now=True)
    updated_at: datetime = ts_field(nullable=False, default_now=True)


class CallBase(Labelled):
    labels = {
        "remote_number": "the remote number",
        "sip_call_id": "the SIP Call-ID",
        "extension": "the extension",
        "hangup_cause": "the hang-up cause",
        "note": "a note",
    }

    # As dialled or shown by the PBX; the E.164 form is derived by the service.
    remote_number: str = Field(default="", max_length=64)
    extension: str | None = Field(default=None, max_length=16)
    sip_call_id: str | None = Field(default=None, max_length=255)


class Call(CallBase, TenantOwned, table=True):
    __table_args__ = (
        sa.UniqueConstraint("tenant_id", "sip_call_id", name="uq_call_tenant_sip_call_id"),
        # The PBX's linked id groups the legs of one call (services.pbx.ledger).
        sa.UniqueConstraint("tenant_id", "pbx_linked_id", name="uq_call_tenant_pbx_linked_id"),
        # History is always read newest first inside one tenant; (started_at, id) is the
        # keyset that keeps deep pages fast.
        sa.Index("ix_call_tenant_started", "tenant_id", "started_at", "id"),
        sa.Index("ix_call_tenant_status_started", "tenant_id", "status", "started_at"),
        sa.Index("ix_call_tenant_agent_started", "tenant_id", "agent_user_id", "started_at"),
        sa.Index("ix_call_tenant_client_started", "tenant_id", "client_id", "started_at"),
        # Number search: the calls of the numbers the dictionary found (services.models.call_numbers),
        # or digits anywhere in either number (LIKE '%…%'); with both numbers, the start time and
        # (PostgreSQL: INCLUDE; SQLite: the rowid) the id it reads the index only, never the rows.
        sa.Index(
            "ix_call_tenant_remote", "tenant_id", "remote_e164", "remote_number", "started_at",
            postgresql_include=["id"],
        ),
        # Covers every column call statistics aggregate, so a month of calls is summed
        # from the index alone.
        sa.Index(
            "ix_call_tenant_started_stats",
            "tenant_id", "started_at", "direction", "status", "agent_user_id",
            "answered_at", "ring_seconds", "talk_seconds",
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    agent_user_id: int | None = Field(default=None, foreign_key="user.id", ondelete="SET NULL")
    direction: CallDirection = Field(sa_column=enum_col(CallDirection))
    status: CallStatus = Field(sa_column=enum_col(CallStatus))
    remote_e164: str | None = Field(default=None, max_length=20)
    client_id: int | None = Field(default=None, foreign_key="client.id", ondelete="SET NULL")
    case_id: int | None = Field(default=None, foreign_key="legal_case.id", ondelete="SET NULL")
    notes: str = Field(default="", sa_column=sa.Column(sa.Text, nullable=False, server_default=""))
    started_at: datetime = ts_field(nullable=False, default_now=True)
    answered_at: datetime | None = ts_field()
    ended_at: datetime | None = ts_field()
    ring_seconds: int | None = Field(default=None)
    talk_seconds: int | None = Field(default=None)
    hangup_cause: str | None = Field(default=None, max_length=64)
    # The PBX's id of the call (its linked id) once its records were merged, and when.
    pbx_linked_id: str | None = Field(default=None, max_length=150)
    pbx_confirmed_at: datetime | None = ts_field()
    updated_at: datetime = ts_field(nullable=False, default_now=True)


class CallNoteBase(Labelled):
    labels = {"body": "a note"}

    # A text column; the limit is the application's.
    body: str = Field(max_length=10_000, sa_type=sa.Text)


class CallNote(CallNoteBase, TenantOwned, table=True):
    __tablename__ = "call_note"

    id: int | None = Field(default=None, primary_key=True)
    call_id: int = Field(foreign_key="call.id", index=True, ondelete="CASCADE")
    author_user_id: int | None = Field(default=None, foreign_key="user.id", ondelete="SET NULL")
    created_at: datetime = ts_field(nullable=False, default_now=True)


class CallRecording(TenantOwned, table=True):
    __tablename__ = "call_recording"
    __table_args__ = (sa.UniqueConstraint("tenant_id", "source_file", name="uq_call_recording_tenant_source_file"),)

    id: int | None = Field(default=None, primary_key=True)
    call_id: int = Field(foreign_key="call.id", index=True, ondelete="CASCADE")
    url: str = Field(default="", max_length=1024)
    duration_seconds: int | None = Field(default=None)
    # The file's name at the PBX (CdrRecord.recording_files), and the stored file (its key,
    # type, size, digest: services.blobs), None until fetched and after retention deleted it.
    source_file: str | None = Field(default=None, max_length=512)
    blob_id: int | None = Field(default=None, foreign_key="blob.id", index=True, ondelete="SET NULL")
    # Fetching from the PBX (services.pbx.recordings): failed attempts so far, when the next
    # may run (backoff) and the last failure's code. Bounded: after the last attempt the row
    # stays unfetched with its error.
    fetch_attempts: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    fetch_after: datetime | None = ts_field()
    fetch_error: str | None = Field(default=None, max_length=32)
    # Set when retention deleted the file: the row stays (so the call shows that it had a
    # recording, and a PBX record read again does not fetch it back), its blob is deleted.
    purged_at: datetime | None = ts_field()
    created_at: datetime = ts_field(nullable=False, default_now=True)


class PbxSettingsIn(SQLModel):
    host: str
    transport: str = "wss"
    wss_port: int = 8089
    wss_path: str = "/ws"
    sip_domain: str = ""
    did: str = ""
    ice_servers: list[dict[str, Any]] = []
    # Call records (services.pbx.settings): None keeps what is stored. The UCM API
    # password is write-only, passed separately (never part of a settings object).
    cdr_source: str | None = None
    api_url: str | None = None
    api_user: str | None = None
    realtime_port: int | None = None


class PbxSettingsPublic(SQLModel):
    host: str
    transport: str
    wss_port: int
    wss_path: str
    sip_domain: str
    did: str = ""
    ice_servers: list[dict[str, Any]]
    wss_url: str
    cdr_source: str = ""
    api_url: str = ""
    api_user: str = ""
    # The UCM API password itself is never returned.
    api_password_set: bool = False
    realtime_port: int | None = None


class ExtensionAssign(SipExtensionBase, Input):
    user_id: int
    # Required for a new extension; omitted on a change keeps the stored one.
    password: str | None = None


class ExtensionPublic(SipExtensionBase):
    id: int
    user_id: int
    user_email: str
    user_full_name: str
    sip_uri: str | None = None


class SoftphoneConfig(SQLModel):
    """What one agent's browser needs to register; contains that agent's password."""

    extension_id: int
    extension: str
    display_name: str
    wss_url: str
    sip_uri: str
    authorization_user: str
    password: str
    ice_servers: list[dict[str, Any]]
    sip_domain: str


class CallCreate(CallBase, Input):
    direction: CallDirection
    remote_number: str = Field(max_length=max_length(CallBase, "remote_number"))
    status: CallStatus = CallStatus.RINGING
    started_at: datetime | None = None
    agent_user_id: int | None = None


class CallUpdate(Input):
    labels = CallBase.labels

    status: CallStatus | None = None
    answered_at: datetime | None = None
    ended_at: datetime | None = None
    hangup_cause: str | None = Field(default=None, max_length=max_length(Call, "hangup_cause"))
    ring_seconds: int | None = None
    talk_seconds: int | None = None
    note: str | None = Field(default=None, max_length=max_length(CallNoteBase, "body"))
    case_id: int | None = None


class CallFilters(SQLModel):
    """Filters of the call history; every one optional, combined with AND."""

    date_from: datetime | None = None
    date_to: datetime | None = None
    direction: CallDirection | None = None
    statuses: list[CallStatus] = []
    agent_user_id: int | None = None
    client_id: int | None = None
    # Digits of a number (any format); matches remote numbers containing them.
    number: str | None = None


class CallNotePublic(CallNoteBase):
    id: int
    author_user_id: int | None
    author_name: str
    created_at: datetime


class CallRecordingPublic(SQLModel):
    id: int
    url: str
    duration_seconds: int | None
    # Stored (encrypted) here and playable at GET /call-center/recordings/{id}; False while
    # it is being fetched from the PBX, after a failed fetch, or once retention deleted it.
    stored: bool = False
    # Every fetch from the PBX failed (services.pbx.recordings.MAX_FETCH_ATTEMPTS): it will not come.
    fetch_failed: bool = False
    content_type: str = "audio/wav"
    size_bytes: int | None = None
    purged_at: datetime | None = None


class CallPublic(CallBase):
    id: int
    agent_user_id: int | None
    agent_name: str | None = None
    direction: CallDirection
    status: CallStatus
    remote_e164: str | None
    client_id: int | None
    client_name: str | None = None
    case_id: int | None
    case_title: str | None = None
    notes: str
    started_at: datetime
    answered_at: datetime | None
    ended_at: datetime | None
    ring_seconds: int | None
    talk_seconds: int | None
    hangup_cause: str | None


class CallDetail(CallPublic):
    note_entries: list[CallNotePublic] = []
    recordings: list[CallRecordingPublic] = []


class CallsPage(SQLModel):
    """A page of the call history (cursor paging): the rows, how many match, the next page's cursor."""

    data: list[CallPublic]
    count: int = Field(
        description="how many calls match; when count_is_lower_bound, at least this many (the bound, 1,000) match"
    )
    count_is_lower_bound: bool = Field(
        default=False,
        description=(
            "true when a number search matches more calls than it counts (more than `count`); "
            "every page is still there, by next_cursor or page number"
        ),
    )
    next_cursor: str | None = None
    page: int | None = None
    page_size: int
