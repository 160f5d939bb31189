"""What a sidecar worker keeps in memory: its tunables and what it knows of each firm it holds."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field
from datetime import datetime

from services import config
from services.models import WhatsappLease


def _env_float(name: str, default: float) -> float:
    try:
        return float(config.get(name, str(default)) or default)
    except ValueError:
        return default


@dataclass
class Settings:
    """Tunables, each from a ``WATHEEQ_WHATSAPP_*`` variable."""

    tick_seconds: float = 1.0
    lease_seconds: float = 30.0
    max_sessions: int = 500
    claim_batch: int = 50
    send_rate: float = 1.0  # messages per second per firm; 0 = unlimited
    send_attempts: int = 5
    backoff_base: float = 2.0
    backoff_cap: float = 300.0
    qr_timeout: float = 160.0
    max_qr_codes: int = 6
    health_interval: float = 30.0
    zombie_seconds: float = 90.0
    stop_timeout: float = 10.0
    # Human pace (guardrails against bans, services.whatsapp.guardrails), on by default:
    # - read receipts, then "typing…" for the text's length at ~6 characters a second (a
    #   person's typing speed on a phone), at most 6 s: the "seen → typing → send" sequence
    #   WAHA's "How to avoid blocking" advises and Evolution API's per-message "composing" delay;
    # - a random gap of 2-6 s between sends (neonize's FAQ: stay within 20-30 messages a
    #   minute; random, never a fixed period);
    # - first messages to numbers that never wrote to the firm: one per 30-60 s (whatsmeow's
    #   ban reason SEND_TO_TOO_MANY_PEOPLE is about exactly these), and a daily cap per firm
    #   (WhatsappSession.first_contact_daily_cap).
    mark_read: bool = True
    typing_chars_per_second: float = 6.0
    typing_max_seconds: float = 6.0
    gap_min_seconds: float = 2.0
    gap_max_seconds: float = 6.0
    first_contact_gap_seconds: float = 30.0

    @classmethod
    def from_env(cls) -> Settings:
        return cls(
            tick_seconds=_env_float("WATHEEQ_WHATSAPP_TICK_SECONDS", 1.0),
            lease_seconds=_env_float("WATHEEQ_WHATSAPP_LEASE_SECONDS", 30.0),
            max_sessions=int(_env_float("WATHEEQ_WHATSAPP_MAX_SESSIONS", 500)),
            claim_batch=int(_env_float("WATHEEQ_WHATSAPP_CLAIM_BATCH", 50)),
            send_rate=_env_float("WATHEEQ_WHATSAPP_SEND_RATE", 1.0),
            send_attempts=int(_env_float("WATHEEQ_WHATSAPP_SEND_ATTEMPTS", 5)),
            backoff_base=_env_float("WATHEEQ_WHATSAPP_BACKOFF_BASE_SECONDS", 2.0),
            backoff_cap=_env_float("WATHEEQ_WHATSAPP_BACKOFF_CAP_SECONDS", 300.0),
            qr_timeout=_env_float("WATHEEQ_WHATSAPP_QR_TIMEOUT_SECONDS", 160.0),
            max_qr_codes=int(_env_float("WATHEEQ_WHATSAPP_MAX_QR_CODES", 6)),
            health_interval=_env_float("WATHEEQ_WHATSAPP_HEALTH_SECONDS", 30.0),
            zombie_seconds=_env_float("WATHEEQ_WHATSAPP_ZOMBIE_SECONDS", 90.0),
            mark_read=_env_float("WATHEEQ_WHATSAPP_MARK_READ", 1) != 0,
            typing_chars_per_second=_env_float("WATHEEQ_WHATSAPP_TYPING_CHARS_PER_SECOND", 6.0),
            typing_max_seconds=_env_float("WATHEEQ_WHATSAPP_TYPING_MAX_SECONDS", 6.0),
            gap_min_seconds=_env_float("WATHEEQ_WHATSAPP_GAP_MIN_SECONDS", 2.0),
            gap_max_seconds=_env_float("WATHEEQ_WHATSAPP_GAP_MAX_SECONDS", 6.0),
            first_contact_gap_seconds=_env_float("WATHEEQ_WHATSAPP_FIRST_CONTACT_GAP_SECONDS", 30.0),
        )


def backoff_delay(attempt: int, base: float, cap: float) -> float:
    """Seconds before retry number ``attempt`` (1-based): exponential, capped, half of it jittered."""
    ceiling = min(cap, base * (2 ** max(0, attempt - 1)))
    return ceiling / 2 + random.uniform(0, ceiling / 2)


@dataclass
class HeldTenant:
    """What the worker knows of one held session beyond its row."""

    lease: WhatsappLease
    busy: bool = False  # a start/stop/teardown is in flight
    started_at: float | None = None
    pairing_since: float | None = None
    qr_count: int = 0
    connected: bool = False
    last_health: float = 0.0
    keepalive_failing_since: float | None = None
    sender: asyncio.Task[None] | None = None
    stop_sending: bool = False  # the sender finishes the message in hand, then stops
    next_send_at: float = 0.0
    retry_after: dict[int, float] = field(default_factory=dict)
    # The end of a temporary ban WhatsApp reported: no reconnect (and no send) before it.
    banned_until: datetime | None = None
    ban_checked_at: float = float("-inf")  # when the sender last read the ban from the database
    # Chats the firm already talks with (no first contact): no need to ask the database again.
    known_chats: set[str] = field(default_factory=set)

