"""The firm's WhatsApp line: its session (desired and actual state) and messages.

Families: ``WhatsappMessageBase`` (table ``WhatsappMessage``, ``WhatsappMessagePublic``; the
sidecar's checks of what a gateway reports read its limits) and ``WhatsappSend`` (what a
person sends, with the send limit). The session's public form is ``WhatsappStatusPublic``.
"""

from __future__ import annotations

import enum
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from services.models.base import Input, Labelled, TenantOwned, enum_col, ts_field


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
    # The last time a sidecar proved alive for this line (claim, renewal, or a clean release):
    # "not running since" when no sidecar holds the lease.
    lease_renewed_at: datetime | None = ts_field()
    # Inbound ingestion, counted by the sidecar: events received, rows newly stored, messages
    # that could not be stored even after retries (kept raw in whatsapp_dead_letter).
    messages_received: int = Field(default=0, sa_column=sa.Column(sa.BigInteger, nullable=False, server_default="0"))
    messages_stored: int = Field(default=0, sa_column=sa.Column(sa.BigInteger, nullable=False, server_default="0"))
    messages_failed: int = Field(default=0, sa_column=sa.Column(sa.BigInteger, nullable=False, server_default="0"))
    # How many messages the last reconnect's offline sync brought (what arrived while away).
    offline_sync_messages: int | None = Field(default=None)
    offline_sync_at: datetime | None = ts_field()
    # Guardrails against bans (services.whatsapp.guardrails): the firm's daily cap on first
    # messages to numbers that never wrote to it, and whatsmeow's temporary ban (its reason code
    # and expiry): nothing is sent until then.
    first_contact_daily_cap: int = Field(default=20, sa_column=sa.Column(sa.Integer, nullable=False, server_default="20"))
    banned_until: datetime | None = ts_field()
    ban_code: str | None = Field(default=None, max_length=64)
    # Incoming WhatsApp calls: declined with an automatic text (services.whatsapp.calls).
    reject_calls: bool = Field(default=False, sa_column=sa.Column(sa.Boolean, nullable=False, server_default=sa.false()))
    updated_at: datetime = ts_field(nullable=False, default_now=True)


class WhatsappMessageBase(Labelled):
    labels = {"wa_message_id": "a WhatsApp message id", "chat_jid": "a chat JID"}

    wa_message_id: str | None = Field(default=None, max_length=128)
    chat_jid: str = Field(max_length=128)
    remote_e164: str | None = Field(default=None, max_length=20)
    push_name: str | None = Field(default=None, max_length=128)
    message_type: str = Field(default="text", max_length=32)


class WhatsappMessage(WhatsappMessageBase, TenantOwned, table=True):
    __tablename__ = "whatsapp_message"
    __table_args__ = (
        sa.UniqueConstraint("tenant_id", "wa_message_id", name="uq_whatsapp_message_tenant_wa_id"),
        sa.Index("ix_wa_msg_tenant_created", "tenant_id", "created_at", "id"),
        sa.Index("ix_wa_msg_tenant_status", "tenant_id", "status", "id"),
        sa.Index("ix_wa_msg_tenant_chat", "tenant_id", "chat_jid", "created_at"),
        sa.Index("ix_wa_msg_tenant_client", "tenant_id", "client_id", "created_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    direction: MessageDirection = Field(sa_column=enum_col(MessageDirection))
    status: MessageStatus = Field(sa_column=enum_col(MessageStatus))
    client_id: int | None = Field(default=None, foreign_key="client.id", ondelete="SET NULL")
    sender_user_id: int | None = Field(default=None, foreign_key="user.id", ondelete="SET NULL")
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
    # A file sent along (image, document, voice note, audio, video): services.whatsapp.media.
    # State: pending (to download) | stored | failed (retried with backoff, then a person's
    # retry) | too_large | over_quota. The reference to download it again is encrypted.
    # Name, type and size as WhatsApp declared them (known before the download; the size is
    # the stored one once stored); the stored file itself (key, digest) is the blob.
    media_state: str | None = Field(default=None, max_length=16)
    media_name: str | None = Field(default=None, max_length=255)
    media_mime: str | None = Field(default=None, max_length=128)
    media_size: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger, nullable=True))
    blob_id: int | None = Field(default=None, foreign_key="blob.id", index=True, ondelete="SET NULL")
    media_ref_encrypted: str | None = Field(default=None, sa_column=sa.Column(sa.Text, nullable=True))
    media_attempts: int = Field(default=0, sa_column=sa.Column(sa.Integer, nullable=False, server_default="0"))
    media_next_try_at: datetime | None = ts_field()
    # Set when the message was handed over as a first contact (the chat never wrote to the
    # firm): the daily cap counts these.
    first_contact_at: datetime | None = ts_field()


class WhatsappDeadLetter(TenantOwned, table=True):
    """An inbound message that could not be stored even after retries, kept raw (never dropped)."""

    __tablename__ = "whatsapp_dead_letter"
    __table_args__ = (
        sa.UniqueConstraint("tenant_id", "wa_message_id", name="uq_whatsapp_dead_letter_tenant_wa_id"),
        sa.Index("ix_wa_dead_tenant_created", "tenant_id", "created_at", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    wa_message_id: str = Field(max_length=256)
    # The message as the gateway reported it (JSON), so nothing of it is lost.
    payload: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    error: str = Field(default="", max_length=512)
    attempts: int = Field(default=0)
    created_at: datetime = ts_field(nullable=False, default_now=True)
    last_attempt_at: datetime = ts_field(nullable=False, default_now=True)


class WhatsappLidMap(TenantOwned, table=True):
    """A person's LID (WhatsApp's hidden id) and the phone number it was resolved to."""

    __tablename__ = "whatsapp_lid_map"
    __table_args__ = (sa.UniqueConstraint("tenant_id", "lid", name="uq_whatsapp_lid_map_tenant_lid"),)

    id: int | None = Field(default=None, primary_key=True)
    lid: str = Field(max_length=128)
    e164: str = Field(max_length=20)
    created_at: datetime = ts_field(nullable=False, default_now=True)


class WhatsappDeadLetterPublic(SQLModel):
    id: int
    wa_message_id: str
    payload: str
    error: str
    attempts: int
    created_at: datetime
    last_attempt_at: datetime


class WhatsappDeadLettersPage(SQLModel):
    data: list[WhatsappDeadLetterPublic]
    count: int


class WhatsappIngestStats(SQLModel):
    """The firm's inbound counters and its last offline sync, as shown on the WhatsApp page."""

    received: int
    stored: int
    failed: int
    dead_letters: int
    offline_sync_messages: int | None
    offline_sync_at: datetime | None


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
    # False while the line needs a sidecar and none holds it (crashed, stopped, never started):
    # then the status is ERROR / service_down, not a stale CONNECTED; since when, if known.
    service_running: bool = True
    service_down_since: datetime | None = None
    # Guardrails: a temporary ban pauses sending until banned_until (ban_code: whatsmeow's
    # reason code); the daily cap on first contacts and how many were sent today.
    banned_until: datetime | None = None
    ban_code: str | None = None
    first_contact_daily_cap: int = 20
    first_contacts_today: int = 0
    reject_calls: bool = False


class WhatsappGuardrailsUpdate(Input):
    labels = {"first_contact_daily_cap": "a daily cap on first contacts", "reject_calls": "whether to decline WhatsApp calls"}

    # Each left out stays as it is.
    first_contact_daily_cap: int | None = Field(default=None, ge=0, le=1000)
    reject_calls: bool | None = None


class WhatsappSend(Input):
    labels = {"body": "a message"}

    to: str | None = None
    client_id: int | None = None
    # WhatsApp takes longer texts; the line sends at most this many characters in one message.
    body: str = Field(max_length=4096)


class WhatsappMessagePublic(WhatsappMessageBase):
    id: int
    direction: MessageDirection
    status: MessageStatus
    client_id: int | None
    client_name: str | None = None
    body: str
    # Why a message failed or is uncertain: a code and its sentence, never exception text.
    error_code: str | None = None
    error: str | None
    created_at: datetime
    sent_at: datetime | None
    delivered_at: datetime | None
    read_at: datetime | None
    media_state: str | None = None
    media_name: str | None = None
    media_mime: str | None = None
    media_size: int | None = None
    media_sha256: str | None = None
    # The cases its file was saved to (services.case_files), by title; in the message log.
    saved_to_cases: list[str] = []


class WhatsappMessagesPage(SQLModel):
    """A page of the line's messages (cursor paging): the rows, how many match, the next page's cursor."""

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
    # The sender's LID (``digits@lid``) when WhatsApp named the person by it; with
    # ``remote_e164`` also set it is a LID-to-phone mapping the store learns and applies.
    sender_lid: str | None = None
    # A file with the message: what the sender declared, and the gateway's own reference to
    # download it (opaque; kept encrypted).
    media_name: str | None = None
    media_mime: str | None = None
    media_size: int | None = None
    media_ref: str | None = None


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
    # A file to send with ``body`` as its caption (services.storage key), its name and type.
    media_key: str | None = None
    # What the file is sealed with (its blob's kind: services.blobs.PURPOSES); None: a WhatsApp file.
    media_purpose: str | None = None
    media_name: str | None = None
    media_mime: str | None = None
