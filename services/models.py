"""Every table, enum and DTO of the communication module, in one place.

Tables inherit :class:`TenantOwned` when they belong to a firm; every service query
goes through :func:`services.tenancy.tenant_select` / :func:`services.tenancy.get_owned`
so a row of another tenant is simply not found.

Timestamps are stored in UTC. SQLite keeps no zone, so :class:`UTCDateTime` stores
naive UTC and hands back aware UTC datetimes on every backend.
"""

from __future__ import annotations

import enum
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

# The roles vocabulary lives with the permissions; re-exported for ``from services.models import Role``.
from services.authz import ADMIN_ROLES, SUPERVISOR_ROLES, Role  # noqa: F401


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class UTCDateTime(sa.types.TypeDecorator):
    """A DateTime that is always UTC-aware in Python and naive UTC in the database."""

    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given where UTC was expected")
        return value.astimezone(timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc)


def ts_field(*, nullable: bool = True, index: bool = False, default_now: bool = False) -> Any:
    kwargs: dict[str, Any] = {}
    if default_now:
        kwargs["default_factory"] = utcnow
    else:
        kwargs["default"] = None
    return Field(sa_column=sa.Column(UTCDateTime(), nullable=nullable, index=index), **kwargs)


# --------------------------------------------------------------------------- enums


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


class CaseStatus(str, enum.Enum):
    OPEN = "OPEN"
    PENDING = "PENDING"
    CLOSED = "CLOSED"


class WhatsappDesiredState(str, enum.Enum):
    CONNECTED = "CONNECTED"
    DISCONNECTED = "DISCONNECTED"


class WhatsappStatus(str, enum.Enum):
    DISCONNECTED = "DISCONNECTED"
    CONNECTING = "CONNECTING"
    QR_PENDING = "QR_PENDING"
    CONNECTED = "CONNECTED"
    ERROR = "ERROR"


class MessageDirection(str, enum.Enum):
    INBOUND = "INBOUND"
    OUTBOUND = "OUTBOUND"


class MessageStatus(str, enum.Enum):
    PENDING = "PENDING"
    # Handed to WhatsApp by a sidecar that has not yet heard back (committed before the send).
    SENDING = "SENDING"
    # A sidecar died mid-send and WhatsApp cannot tell whether it arrived: a person decides.
    UNCERTAIN = "UNCERTAIN"
    SENT = "SENT"
    DELIVERED = "DELIVERED"
    READ = "READ"
    FAILED = "FAILED"
    RECEIVED = "RECEIVED"


def enum_col(enum_cls: type[enum.Enum], *, index: bool = False, nullable: bool = False) -> Any:
    # Stored as plain strings (no native DB enum) so adding a value needs no type migration.
    return sa.Column(
        sa.Enum(enum_cls, native_enum=False, length=16, validate_strings=True),
        nullable=nullable,
        index=index,
    )


# --------------------------------------------------------------------------- tables


class TenantOwned(SQLModel):
    tenant_id: int = Field(foreign_key="tenant.id", index=True, nullable=False, ondelete="CASCADE")


class Tenant(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=200)
    slug: str = Field(max_length=80, unique=True)
    region: str = Field(default="SA", max_length=2)
    timezone: str = Field(default="Asia/Riyadh", max_length=64)
    created_at: datetime = ts_field(nullable=False, default_now=True)


class User(TenantOwned, table=True):
    __table_args__ = (sa.UniqueConstraint("email", name="uq_user_email"),)

    id: int | None = Field(default=None, primary_key=True)
    # Emails are unique across tenants: a login names one person in one firm.
    email: str = Field(max_length=254)
    full_name: str = Field(default="", max_length=200)
    role: Role = Field(sa_column=enum_col(Role))
    password_hash: str = Field(max_length=255)
    active: bool = Field(default=True)
    created_at: datetime = ts_field(nullable=False, default_now=True)
    last_sign_in_at: datetime | None = ts_field()


class ApiToken(TenantOwned, table=True):
    __tablename__ = "api_token"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="user.id", index=True, ondelete="CASCADE")
    # SHA-256 of the token; the token itself is shown once and never stored.
    token_hash: str = Field(max_length=64, unique=True)
    created_at: datetime = ts_field(nullable=False, default_now=True)
    expires_at: datetime = ts_field(nullable=False)
    revoked: bool = Field(default=False)
    # Idle time is measured here, never by the browser: a sign-in from the dashboard ends
    # after ``idle_timeout_seconds`` without use (None: a script's token, no idle limit).
    last_used_at: datetime | None = ts_field()
    idle_timeout_seconds: int | None = Field(default=None)


class LoginThrottle(SQLModel, table=True):
    """Sign-in attempts of one email or one source address, shared by every process.

    Not tenant-owned: the attempt comes before anyone knows the firm. The key is a hash,
    so the table names neither the addresses tried nor who tried them.
    """

    __tablename__ = "login_throttle"

    key_hash: str = Field(primary_key=True, max_length=64)
    # Attempts counted in the window that no successful sign-in has taken back.
    attempts: int = Field(default=0)
    window_started_at: datetime = ts_field(nullable=False, index=True, default_now=True)
    blocked_until: datetime | None = ts_field()


class PasswordSetLink(TenantOwned, table=True):
    """A one-time link with which a user sets their own password (new account or reset)."""

    __tablename__ = "password_set_link"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="user.id", index=True, ondelete="CASCADE")
    # SHA-256 of the link's token; the token is shown once, to the admin who made it.
    token_hash: str = Field(max_length=64, unique=True)
    created_by_user_id: int | None = Field(default=None, foreign_key="user.id", ondelete="SET NULL")
    created_at: datetime = ts_field(nullable=False, default_now=True)
    expires_at: datetime = ts_field(nullable=False)
    used_at: datetime | None = ts_field()


class Client(TenantOwned, table=True):
    __table_args__ = (
        sa.Index("ix_client_tenant_phone", "tenant_id", "phone_e164"),
        sa.Index("ix_client_tenant_name", "tenant_id", "name"),
    )

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=200)
    phone: str = Field(default="", max_length=64)
    phone_e164: str | None = Field(default=None, max_length=20)
    email: str | None = Field(default=None, max_length=254)
    created_at: datetime = ts_field(nullable=False, default_now=True)


class Case(TenantOwned, table=True):
    __tablename__ = "legal_case"

    id: int | None = Field(default=None, primary_key=True)
    client_id: int | None = Field(default=None, foreign_key="client.id", index=True, ondelete="SET NULL")
    title: str = Field(max_length=200)
    reference: str = Field(default="", max_length=64)
    status: CaseStatus = Field(default=CaseStatus.OPEN, sa_column=enum_col(CaseStatus))
    created_at: datetime = ts_field(nullable=False, default_now=True)


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
    # JSON list of {"urls": ..., "username"?: ..., "credential"?: ...} (RTCIceServer shape).
    ice_servers: list[dict[str, Any]] = Field(default_factory=list, sa_column=sa.Column(sa.JSON, nullable=False))
    # TURN credentials are secrets: stored encrypted, merged into ice_servers only for a softphone.
    turn_credential_encrypted: str | None = Field(default=None, max_length=512)
    updated_at: datetime = ts_field(nullable=False, default_now=True)


class SipExtension(TenantOwned, table=True):
    __tablename__ = "sip_extension"
    __table_args__ = (
        sa.UniqueConstraint("tenant_id", "extension", name="uq_sip_extension_tenant_number"),
        sa.UniqueConstraint("user_id", name="uq_sip_extension_user"),
    )

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="user.id", ondelete="CASCADE")
    extension: str = Field(max_length=16)
    display_name: str = Field(default="", max_length=100)
    password_encrypted: str = Field(max_length=512)
    created_at: datetime = ts_field(nullable=False, default_now=True)
    updated_at: datetime = ts_field(nullable=False, default_now=True)


class Call(TenantOwned, table=True):
    __table_args__ = (
        sa.UniqueConstraint("tenant_id", "sip_call_id", name="uq_call_tenant_sip_call_id"),
        # History is always read newest first inside one tenant; (started_at, id) is the
        # keyset that keeps deep pages fast.
        sa.Index("ix_call_tenant_started", "tenant_id", "started_at", "id"),
        sa.Index("ix_call_tenant_status_started", "tenant_id", "status", "started_at"),
        sa.Index("ix_call_tenant_agent_started", "tenant_id", "agent_user_id", "started_at"),
        sa.Index("ix_call_tenant_client_started", "tenant_id", "client_id", "started_at"),
        # Number search matches digits anywhere in either number (LIKE '%…%'); with both
        # numbers and the start time in the index it reads the index only, never the rows.
        sa.Index("ix_call_tenant_remote", "tenant_id", "remote_e164", "remote_number", "started_at"),
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
    extension: str | None = Field(default=None, max_length=16)
    direction: CallDirection = Field(sa_column=enum_col(CallDirection))
    status: CallStatus = Field(sa_column=enum_col(CallStatus))
    remote_number: str = Field(default="", max_length=64)
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
    sip_call_id: str | None = Field(default=None, max_length=255)
    updated_at: datetime = ts_field(nullable=False, default_now=True)


class CallHourlyRollup(TenantOwned, table=True):
    """Call figures of one firm, one UTC hour and one agent, summed once the hour is sealed.

    Written only by ``services.call_center.stats`` for hours listed in
    :class:`CallRollupHour`; each column is the same conditional count or sum that
    statistics compute from the calls, so adding rows up gives exactly the raw figures.
    """

    __tablename__ = "call_hourly_rollup"
    __table_args__ = (sa.Index("ix_call_hourly_rollup_tenant_hour", "tenant_id", "hour_start"),)

    id: int | None = Field(default=None, primary_key=True)
    hour_start: datetime = ts_field(nullable=False)
    # Mirrors Call.agent_user_id, SET NULL included: a deleted agent's calls and their
    # rollups both become "no agent", so no recount is needed. NULL agents are why the
    # uniqueness of an hour's rows is kept by CallRollupHour, not a unique key here.
    agent_user_id: int | None = Field(default=None, foreign_key="user.id", ondelete="SET NULL")
    total: int = 0
    inbound: int = 0
    answered: int = 0
    missed: int = 0
    answered_inbound: int = 0
    # Answered inbound calls rung at most 20 s, the default service-level threshold.
    answered_inbound_within_20s: int = 0
    ring_seconds_sum: int = Field(default=0, sa_type=sa.BigInteger)
    ring_count: int = 0
    talk_seconds_sum: int = Field(default=0, sa_type=sa.BigInteger)
    talk_count: int = 0


class CallRollupHour(TenantOwned, table=True):
    """One row per (firm, UTC hour) whose rows in call_hourly_rollup were computed.

    ``stale`` is set by any change to a call of that hour after it was sealed; the next
    statistics request recomputes the hour. The row exists for hours without calls too,
    so an empty hour is not recounted.
    """

    __tablename__ = "call_rollup_hour"
    __table_args__ = (sa.UniqueConstraint("tenant_id", "hour_start", name="uq_call_rollup_hour_tenant_hour"),)

    id: int | None = Field(default=None, primary_key=True)
    hour_start: datetime = ts_field(nullable=False)
    stale: bool = Field(default=False)


class CallNote(TenantOwned, table=True):
    __tablename__ = "call_note"

    id: int | None = Field(default=None, primary_key=True)
    call_id: int = Field(foreign_key="call.id", index=True, ondelete="CASCADE")
    author_user_id: int | None = Field(default=None, foreign_key="user.id", ondelete="SET NULL")
    body: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    created_at: datetime = ts_field(nullable=False, default_now=True)


class CallRecording(TenantOwned, table=True):
    __tablename__ = "call_recording"

    id: int | None = Field(default=None, primary_key=True)
    call_id: int = Field(foreign_key="call.id", index=True, ondelete="CASCADE")
    url: str = Field(max_length=1024)
    duration_seconds: int | None = Field(default=None)
    created_at: datetime = ts_field(nullable=False, default_now=True)


class AuditEvent(TenantOwned, table=True):
    """Who did what to which object of the firm, and when (append-only)."""

    __tablename__ = "audit_event"
    __table_args__ = (sa.Index("ix_audit_event_tenant_at", "tenant_id", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    # Kept when the user is deleted: the log must still say that somebody did it.
    actor_user_id: int | None = Field(default=None, foreign_key="user.id", ondelete="SET NULL")
    action: str = Field(max_length=64)
    object_type: str = Field(max_length=32)
    object_id: str = Field(default="", max_length=64)
    at: datetime = ts_field(nullable=False, default_now=True)
    # Small JSON object of what changed; never a secret.
    detail: dict[str, Any] = Field(default_factory=dict, sa_column=sa.Column(sa.JSON, nullable=False))


class WhatsappSession(TenantOwned, table=True):
    __tablename__ = "whatsapp_session"
    __table_args__ = (sa.UniqueConstraint("tenant_id", name="uq_whatsapp_session_tenant"),)

    id: int | None = Field(default=None, primary_key=True)
    desired_state: WhatsappDesiredState = Field(
        default=WhatsappDesiredState.DISCONNECTED, sa_column=enum_col(WhatsappDesiredState)
    )
    status: WhatsappStatus = Field(default=WhatsappStatus.DISCONNECTED, sa_column=enum_col(WhatsappStatus))
    qr_payload: str | None = Field(default=None, max_length=2048)
    qr_issued_at: datetime | None = ts_field()
    # The paired device's JID (from PairStatusEv.ID), needed to restore without a new QR.
    device_jid: str | None = Field(default=None, max_length=128)
    phone_number: str | None = Field(default=None, max_length=20)
    push_name: str | None = Field(default=None, max_length=128)
    connected_since: datetime | None = ts_field()
    # The raw failure (for OWNER/ADMIN's details) and its class (services.whatsapp.failures).
    last_error: str | None = Field(default=None, max_length=512)
    error_code: str | None = Field(default=None, max_length=32)
    retry_count: int = Field(default=0)
    next_retry_at: datetime | None = ts_field()
    last_seen_at: datetime | None = ts_field()
    worker_id: str | None = Field(default=None, max_length=128)
    lease_expires_at: datetime | None = ts_field(index=True)
    updated_at: datetime = ts_field(nullable=False, default_now=True)


class WhatsappMessage(TenantOwned, table=True):
    __tablename__ = "whatsapp_message"
    __table_args__ = (
        sa.UniqueConstraint("tenant_id", "wa_message_id", name="uq_whatsapp_message_tenant_wa_id"),
        sa.Index("ix_wa_msg_tenant_created", "tenant_id", "created_at", "id"),
        sa.Index("ix_wa_msg_tenant_status", "tenant_id", "status", "id"),
        sa.Index("ix_wa_msg_tenant_chat", "tenant_id", "chat_jid", "created_at"),
        sa.Index("ix_wa_msg_tenant_client", "tenant_id", "client_id", "created_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    wa_message_id: str | None = Field(default=None, max_length=128)
    direction: MessageDirection = Field(sa_column=enum_col(MessageDirection))
    status: MessageStatus = Field(sa_column=enum_col(MessageStatus))
    chat_jid: str = Field(max_length=128)
    remote_e164: str | None = Field(default=None, max_length=20)
    client_id: int | None = Field(default=None, foreign_key="client.id", ondelete="SET NULL")
    sender_user_id: int | None = Field(default=None, foreign_key="user.id", ondelete="SET NULL")
    push_name: str | None = Field(default=None, max_length=128)
    message_type: str = Field(default="text", max_length=32)
    body: str = Field(default="", sa_column=sa.Column(sa.Text, nullable=False, server_default=""))
    error: str | None = Field(default=None, max_length=512)
    error_code: str | None = Field(default=None, max_length=32)
    attempts: int = Field(default=0)
    # The send in flight: which attempt (one sidecar process's) holds it, since when.
    send_attempt_id: str | None = Field(default=None, max_length=64)
    sending_started_at: datetime | None = ts_field()
    created_at: datetime = ts_field(nullable=False, default_now=True)
    sent_at: datetime | None = ts_field()
    delivered_at: datetime | None = ts_field()
    read_at: datetime | None = ts_field()
    updated_at: datetime = ts_field(nullable=False, default_now=True)


# --------------------------------------------------------------------------- DTOs
# What leaves the service layer. Table rows never do: they carry tenant ids and secrets.


class Principal(SQLModel):
    """The authenticated actor: who, in which tenant, with which role."""

    user_id: int
    tenant_id: int
    role: Role
    email: str = ""
    full_name: str = ""

    @property
    def is_admin(self) -> bool:
        return self.role in ADMIN_ROLES

    @property
    def is_supervisor(self) -> bool:
        return self.role in SUPERVISOR_ROLES


class TenantPublic(SQLModel):
    id: int
    name: str
    slug: str
    region: str
    timezone: str


class UserPublic(SQLModel):
    id: int
    email: str
    full_name: str
    role: Role
    active: bool
    extension: str | None = None
    last_sign_in_at: datetime | None = None


class PasswordLinkPublic(SQLModel):
    """A set-password link as its creator sees it, once: the token is never stored in clear."""

    user_id: int
    token: str
    expires_at: datetime


class UserCreated(SQLModel):
    user: UserPublic
    # Present when the user was created without a password.
    password_link: PasswordLinkPublic | None = None


class SignInResult(SQLModel):
    principal: Principal
    token: str
    expires_at: datetime


class AuditEventPublic(SQLModel):
    id: int
    actor_user_id: int | None
    actor_email: str | None
    action: str
    object_type: str
    object_id: str
    at: datetime
    detail: dict[str, Any]


class ClientCreate(SQLModel):
    name: str
    phone: str = ""
    email: str | None = None


class ClientPublic(SQLModel):
    id: int
    name: str
    phone: str
    phone_e164: str | None
    email: str | None


class ClientsPublic(SQLModel):
    data: list[ClientPublic]
    count: int


class CasePublic(SQLModel):
    id: int
    client_id: int | None
    title: str
    reference: str
    status: CaseStatus


class PbxSettingsIn(SQLModel):
    host: str
    transport: str = "wss"
    wss_port: int = 8089
    wss_path: str = "/ws"
    sip_domain: str = ""
    ice_servers: list[dict[str, Any]] = []


class PbxSettingsPublic(SQLModel):
    host: str
    transport: str
    wss_port: int
    wss_path: str
    sip_domain: str
    ice_servers: list[dict[str, Any]]
    wss_url: str


class ExtensionAssign(SQLModel):
    user_id: int
    extension: str
    display_name: str = ""
    # Required for a new extension; omitted on a change keeps the stored one.
    password: str | None = None


class ExtensionPublic(SQLModel):
    id: int
    user_id: int
    user_email: str
    user_full_name: str
    extension: str
    display_name: str
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


class CallCreate(SQLModel):
    direction: CallDirection
    remote_number: str
    status: CallStatus = CallStatus.RINGING
    sip_call_id: str | None = None
    started_at: datetime | None = None
    agent_user_id: int | None = None
    extension: str | None = None


class CallUpdate(SQLModel):
    status: CallStatus | None = None
    answered_at: datetime | None = None
    ended_at: datetime | None = None
    hangup_cause: str | None = None
    ring_seconds: int | None = None
    talk_seconds: int | None = None
    note: str | None = None
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


class CallNotePublic(SQLModel):
    id: int
    author_user_id: int | None
    author_name: str
    body: str
    created_at: datetime


class CallRecordingPublic(SQLModel):
    id: int
    url: str
    duration_seconds: int | None


class CallPublic(SQLModel):
    id: int
    agent_user_id: int | None
    agent_name: str | None = None
    extension: str | None
    direction: CallDirection
    status: CallStatus
    remote_number: str
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
    sip_call_id: str | None


class CallDetail(CallPublic):
    note_entries: list[CallNotePublic] = []
    recordings: list[CallRecordingPublic] = []


class CallsPage(SQLModel):
    data: list[CallPublic]
    count: int
    next_cursor: str | None = None
    page: int | None = None
    page_size: int


class AgentStats(SQLModel):
    agent_user_id: int | None
    agent_name: str
    total: int
    inbound: int
    outbound: int
    answered: int
    missed: int
    talk_seconds: int
    average_talk_seconds: float | None


class HourBucket(SQLModel):
    hour: int
    total: int
    answered: int
    missed: int


class DayBucket(SQLModel):
    day: str
    total: int
    answered: int
    missed: int


class CallStats(SQLModel):
    date_from: datetime
    date_to: datetime
    timezone: str
    total: int
    inbound: int
    outbound: int
    answered: int
    missed: int
    answer_rate: float | None
    service_level: float | None
    service_level_threshold_seconds: int
    average_speed_of_answer: float | None
    average_talk_time: float | None
    average_handle_time: float | None
    per_agent: list[AgentStats]
    per_hour: list[HourBucket]
    per_day: list[DayBucket]


class WhatsappStatusPublic(SQLModel):
    status: WhatsappStatus
    desired_state: WhatsappDesiredState
    qr_payload: str | None
    qr_issued_at: datetime | None
    phone_number: str | None
    push_name: str | None
    connected_since: datetime | None
    # What went wrong, as a code and a sentence that says what to do; never exception text.
    error_code: str | None
    error_message: str | None
    next_retry_at: datetime | None
    gateway: str


class WhatsappSend(SQLModel):
    to: str | None = None
    client_id: int | None = None
    body: str


class WhatsappMessagePublic(SQLModel):
    id: int
    wa_message_id: str | None
    direction: MessageDirection
    status: MessageStatus
    chat_jid: str
    remote_e164: str | None
    client_id: int | None
    client_name: str | None = None
    push_name: str | None
    message_type: str
    body: str
    # Why a message failed or is uncertain: a code and its sentence, never exception text.
    error_code: str | None = None
    error: str | None
    created_at: datetime
    sent_at: datetime | None
    delivered_at: datetime | None
    read_at: datetime | None


class WhatsappMessagesPage(SQLModel):
    data: list[WhatsappMessagePublic]
    count: int
    next_cursor: str | None = None


class WhatsappLease(SQLModel):
    """A session as the sidecar holding its lease sees it (never leaves the sidecar)."""

    tenant_id: int
    desired_state: WhatsappDesiredState
    status: WhatsappStatus
    device_jid: str | None
    retry_count: int
    next_retry_at: datetime | None
    lease_expires_at: datetime | None


class WhatsappInbound(SQLModel):
    """One message received by the line, as a gateway reports it."""

    wa_message_id: str
    chat_jid: str
    remote_e164: str | None
    from_me: bool = False
    push_name: str | None = None
    message_type: str = "text"
    body: str = ""
    timestamp: datetime | None = None


class WhatsappOutbound(SQLModel):
    """One PENDING outbound message, as the sidecar's sender needs it."""

    id: int
    chat_jid: str
    body: str
    attempts: int
    status: MessageStatus = MessageStatus.PENDING
    # WhatsApp message id chosen before the send (gateways that take one), else None.
    wa_message_id: str | None = None
    send_attempt_id: str | None = None
