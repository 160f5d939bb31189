"""Demo data: firms, users of every role, clients, cases, extensions and call history.

Small by default (one firm, 500 calls) for a local demo; large on request for the
benchmarks, which is why clients, cases and calls go in as bulk Core inserts in chunks
rather than as ORM objects. A fixed random seed makes every run produce the same data.
"""

from __future__ import annotations

import math
import random
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlmodel import Session, select

from services import accounts, security
from services.call_center import extensions
from services.errors import Invalid
from services.key_rotation import SIP_PASSWORD_PURPOSE
from services.models import (
    Call,
    CallDirection,
    CallStatus,
    Case,
    CaseStatus,
    Client,
    PbxSettings,
    Role,
    SipExtension,
    Tenant,
    TenantPublic,
    User,
)
from services.tenancy import owned_by, tenant_select

DEMO_PASSWORD = "watheeq-demo"
DEMO_FIRM = "Al-Waha Law Firm"
# The local dev PBX (dev/kamailio, started by `make run`): plain ws:// on loopback, which a
# browser reaches from http://localhost without a certificate. Each firm is its own SIP
# domain there; every extension gets a random password, printed once by seed-demo.
DEV_PBX_HOST = "127.0.0.1"
DEV_PBX_TRANSPORT = "ws"
DEV_PBX_WS_PORT = 8088
DEV_PBX_WS_PATH = "/ws"
FIRST_EXTENSION = 1001
# The demo firm's public number on the PBX lab's trunk (127.0.0.1:5080); firm n gets +n-1.
DEMO_DID = 966110000000
CHUNK = 10_000
# Numbers of callers who are not clients come from index ranges no client is given.
UNKNOWN_NUMBERS_FROM = 5_000_000

FIRM_NAMES = [
    DEMO_FIRM,
    "Al-Nakheel Legal Consultants",
    "Qimma Advocates",
    "Al-Bayan Law Office",
    "Al-Rawabi Attorneys",
    "Najd Law Group",
    "Al-Hijaz Legal Partners",
    "Sadeem Law Firm",
    "Al-Mizan Advocates",
    "Dar Al-Adl Law Firm",
]

# (mailbox, role, full name, has an extension)
STAFF = [
    ("owner", Role.OWNER, "Faisal Al-Harbi", False),
    ("admin", Role.ADMIN, "Noura Al-Qahtani", True),
    ("manager", Role.MANAGER, "Khalid Al-Dosari", False),
    ("agent", Role.AGENT, "Sara Al-Mutairi", True),
    ("agent2", Role.AGENT, "Omar Al-Ghamdi", True),
    ("agent3", Role.AGENT, "Reem Al-Shehri", True),
]

MALE_NAMES = ["Mohammed", "Abdullah", "Abdulaziz", "Fahad", "Saud", "Sultan", "Turki", "Nasser", "Majed",
              "Yousef", "Ibrahim", "Hamad", "Bandar", "Meshal", "Saleh", "Ali", "Hassan", "Waleed", "Ziyad", "Nawaf"]
FEMALE_NAMES = ["Nora", "Sara", "Haifa", "Lama", "Reem", "Maha", "Hessa", "Amal", "Latifa", "Dana",
                "Ghada", "Jawaher", "Munira", "Asma", "Hind", "Lujain", "Shahad", "Raghad", "Wejdan", "Abeer"]
FAMILY_NAMES = ["Al-Otaibi", "Al-Qahtani", "Al-Ghamdi", "Al-Zahrani", "Al-Shehri", "Al-Dosari", "Al-Harbi",
                "Al-Mutairi", "Al-Anazi", "Al-Shammari", "Al-Subaie", "Al-Malki", "Al-Omari", "Al-Juhani",
                "Al-Rashidi", "Al-Yami", "Al-Balawi", "Al-Asmari", "Al-Tamimi", "Al-Khalidi"]
ARABIC_FIRST = ["محمد", "عبدالله", "فهد", "سلطان", "نورة", "سارة", "ريم", "هيفاء", "خالد", "منيرة"]
ARABIC_FAMILY = ["العتيبي", "القحطاني", "الغامدي", "الزهراني", "الشهري", "الدوسري", "الحربي", "المطيري"]
COMPANY_KINDS = ["Trading Co.", "Contracting Est.", "Real Estate Co.", "Holding Group", "Logistics Co."]
CASE_TITLES = ["Commercial contract dispute", "Labour claim for end-of-service award", "Lease termination",
               "Partnership dissolution", "Debt collection", "Trademark registration", "Inheritance division",
               "Construction delay claim", "Employment contract review", "Company formation",
               "نزاع تجاري", "مطالبة عمالية", "قضية إيجار"]
CALL_NOTES = ["Client asked about the next hearing date.", "Sent the draft contract by email; awaiting comments.",
              "Requested a copy of the power of attorney.", "Scheduled an office meeting for Sunday.",
              "Discussed settlement options.", "العميل يسأل عن موعد الجلسة القادمة.", "تم إرسال المسودة للمراجعة."]
MOBILE_PREFIXES = "0345689"  # 050, 053, ... 059: Saudi mobile ranges
LANDLINE_AREAS = ["11", "12", "13"]

# (status, weight, hang-up cause) per direction; weights are percentages.
INBOUND_OUTCOMES = [(CallStatus.COMPLETED, 70, "Terminated"), (CallStatus.MISSED, 20, "Canceled"),
                    (CallStatus.BUSY, 3, "Busy"), (CallStatus.REJECTED, 4, "Rejected"),
                    (CallStatus.FAILED, 3, "Unavailable")]
OUTBOUND_OUTCOMES = [(CallStatus.COMPLETED, 64, "Terminated"), (CallStatus.NO_ANSWER, 20, "No Answer"),
                     (CallStatus.BUSY, 8, "Busy"), (CallStatus.REJECTED, 4, "Rejected"),
                     (CallStatus.FAILED, 4, "Request Timeout")]
# Business hours in Riyadh: mornings and mid-afternoon busiest, a quiet prayer/lunch dip.
HOUR_WEIGHTS = {7: 0.2, 8: 0.8, 9: 1.4, 10: 1.8, 11: 1.6, 12: 0.9, 13: 0.8, 14: 1.3, 15: 1.5, 16: 1.1,
                17: 0.6, 18: 0.3, 19: 0.2, 20: 0.1, 21: 0.05}
# Friday and Saturday are the Saudi weekend.
WEEKDAY_WEIGHTS = {0: 1.0, 1: 1.0, 2: 1.0, 3: 1.0, 4: 0.15, 5: 0.3, 6: 1.0}


@dataclass
class SeedLogin:
    tenant: str
    email: str
    role: Role
    extension: str | None
    # The extension's SIP password as generated, for seed-demo to print once.
    sip_password: str | None = field(default=None, repr=False)


@dataclass
class SeedReport:
    tenants: list[TenantPublic] = field(default_factory=list)
    logins: list[SeedLogin] = field(default_factory=list)
    password: str = DEMO_PASSWORD
    clients: int = 0
    cases: int = 0
    calls: int = 0
    seconds: float = 0.0


def has_tenants(*, session: Session) -> bool:
    """Whether any firm exists (``seed-demo --if-empty`` seeds only a fresh database)."""
    return session.exec(select(Tenant.id).limit(1)).first() is not None


def _chunks(rows: Iterator[dict], size: int = CHUNK) -> Iterator[list[dict]]:
    batch: list[dict] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _bulk_insert(session: Session, table: sa.Table, rows: Iterator[dict]) -> int:
    n = 0
    for batch in _chunks(rows):
        session.execute(sa.insert(table), batch)
        n += len(batch)
    return n


def _split(total: int, parts: int) -> list[int]:
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


def _saudi_number(index: int) -> tuple[str, str]:
    """(E.164, national form) of the mobile or landline number ``index``; distinct indices, distinct numbers."""
    if index % 10 == 9:
        area = LANDLINE_AREAS[index % 3]
        # Subscriber numbers starting 5-8 are valid in all three areas.
        local = f"{'5678'[index % 4]}{index // 10:06d}"
        return f"+966{area}{local}", f"0{area}{local}"
    prefix = MOBILE_PREFIXES[index % len(MOBILE_PREFIXES)]
    # A multiplicative scramble of the index keeps numbers unique without looking sequential.
    rest = (index * 7_919_337) % 10_000_000
    return f"+9665{prefix}{rest:07d}", f"05{prefix}{rest:07d}"


def _as_entered(rng: random.Random, e164: str, national: str) -> str:
    style = rng.random()
    if style < 0.45:
        return national
    if style < 0.7:
        return f"{national[:3]} {national[3:6]} {national[6:]}"
    if style < 0.9:
        return f"+966 {e164[4:6]} {e164[6:9]} {e164[9:]}"
    return e164


def _client_name(rng: random.Random, index: int) -> str:
    roll = rng.random()
    if roll < 0.1:
        return f"{rng.choice(FAMILY_NAMES)} {rng.choice(COMPANY_KINDS)}"
    if roll < 0.3:
        return f"{rng.choice(ARABIC_FIRST)} {rng.choice(ARABIC_FAMILY)}"
    first = rng.choice(MALE_NAMES if roll < 0.65 else FEMALE_NAMES)
    return f"{first} {rng.choice(FAMILY_NAMES)}"


def _seed_staff(session: Session, tenant: TenantPublic, domain: str, password_hash: str,
                did: str = "") -> list[tuple[int, str, str]]:
    """Users of every role; returns (user id, extension, SIP password) of those who take calls."""
    agents: list[tuple[int, str, str]] = []
    extension = FIRST_EXTENSION
    for mailbox, role, full_name, takes_calls in STAFF:
        user = User(tenant_id=tenant.id, email=f"{mailbox}@{domain}", full_name=full_name, role=role,
                    password_hash=password_hash)
        session.add(user)
        session.flush()
        if takes_calls:
            number = str(extension)
            # Never derived from the number (nor from the fixed random seed): anyone could
            # otherwise register as anyone on a demo that is reachable.
            sip_password = secrets.token_urlsafe(18)
            session.add(SipExtension(
                tenant_id=tenant.id, user_id=user.id, extension=number, display_name=full_name,
                password_encrypted=security.encrypt_secret(sip_password, purpose=SIP_PASSWORD_PURPOSE),
            ))
            agents.append((user.id, number, sip_password))
            extension += 1
    session.add(PbxSettings(tenant_id=tenant.id, host=DEV_PBX_HOST, transport=DEV_PBX_TRANSPORT,
                            wss_port=DEV_PBX_WS_PORT, wss_path=DEV_PBX_WS_PATH,
                            sip_domain=extensions.dev_pbx_domain(tenant.slug), did=did, ice_servers=[],
                            # The lab's own call records feed the call ledger (the reconciler
                            # that `make run` starts), as a UCM's would.
                            cdr_source="lab"))
    session.flush()
    return agents


def _seed_clients(session: Session, tenant: TenantPublic, rng: random.Random, count: int, now: datetime) -> list[tuple[int, str, str]]:
    """Bulk-inserts ``count`` clients; returns (id, E.164, national form) of each."""
    table = Client.__table__  # type: ignore[attr-defined]

    def rows() -> Iterator[dict]:
        for i in range(count):
            e164, national = _saudi_number(i)
            name = _client_name(rng, i)
            # The first client carries the number the docs and demos dial: 0501234567.
            if i == 0 and tenant.name == DEMO_FIRM:
                name, e164, national = "Mohammed Al-Otaibi", "+966501234567", "0501234567"
            email = None
            if rng.random() < 0.35 and name.isascii():
                email = f"{name.split()[0].lower()}.{i}@example.com"
            yield {"tenant_id": tenant.id, "name": name, "phone": _as_entered(rng, e164, national),
                   "phone_e164": e164, "email": email, "created_at": now - timedelta(days=rng.randint(31, 900))}

    _bulk_insert(session, table, rows())
    found = session.execute(
        sa.select(table.c.id, table.c.phone_e164).where(owned_by(table, tenant.id)).order_by(table.c.id)
    ).all()
    return [(cid, e164, "0" + e164[4:]) for cid, e164 in found]


def _seed_cases(session: Session, tenant: TenantPublic, rng: random.Random, clients: list[tuple[int, str, str]],
                now: datetime) -> dict[int, list[int]]:
    """Cases for about one client in five; returns the case ids of each client that has some."""
    table = Case.__table__  # type: ignore[attr-defined]
    chosen = rng.sample(clients, max(1, len(clients) // 5)) if clients else []
    prefix = "".join(w[0] for w in tenant.slug.split("-") if w)[:4].upper() or "WTQ"

    def rows() -> Iterator[dict]:
        for n, (client_id, _, _) in enumerate(chosen, start=1):
            status = rng.choices([CaseStatus.OPEN, CaseStatus.PENDING, CaseStatus.CLOSED], [60, 25, 15])[0]
            yield {"tenant_id": tenant.id, "client_id": client_id, "title": rng.choice(CASE_TITLES),
                   "reference": f"{prefix}-{now.year}-{n:05d}", "status": status,
                   "created_at": now - timedelta(days=rng.randint(1, 400))}

    _bulk_insert(session, table, rows())
    by_client: dict[int, list[int]] = {}
    for case_id, client_id in session.execute(
        sa.select(table.c.id, table.c.client_id).where(owned_by(table, tenant.id))
    ):
        by_client.setdefault(client_id, []).append(case_id)
    return by_client


def _call_starts(rng: random.Random, tz: ZoneInfo, now: datetime, days: int = 30) -> Iterator[datetime]:
    """Endless start times over the last ``days`` days, shaped like a firm's working week."""
    local_today = now.astimezone(tz).date()
    day_starts = []
    day_weights = []
    for offset in range(days):
        day = local_today - timedelta(days=offset)
        day_starts.append(datetime(day.year, day.month, day.day, tzinfo=tz).astimezone(timezone.utc))
        day_weights.append(WEEKDAY_WEIGHTS[day.weekday()])
    hours = list(HOUR_WEIGHTS)
    hour_weights = list(HOUR_WEIGHTS.values())
    latest = now - timedelta(minutes=15)
    while True:
        day_start = rng.choices(day_starts, day_weights)[0]
        start = day_start + timedelta(seconds=rng.choices(hours, hour_weights)[0] * 3600 + rng.randrange(3600))
        if start <= latest:
            yield start


def _seed_calls(session: Session, tenant: TenantPublic, rng: random.Random, count: int, now: datetime,
                agents: list[tuple[int, str]], clients: list[tuple[int, str, str]],
                cases: dict[int, list[int]]) -> int:
    table = Call.__table__  # type: ignore[attr-defined]
    # In time order, as a real log grows: ids follow started_at, and the time-leading
    # indexes are appended to rather than split at random (much faster bulk loads).
    stream = _call_starts(rng, ZoneInfo(tenant.timezone), now)
    starts = iter(sorted(next(stream) for _ in range(count)))
    outcomes = {CallDirection.INBOUND: INBOUND_OUTCOMES, CallDirection.OUTBOUND: OUTBOUND_OUTCOMES}
    weights = {d: [w for _, w, _ in o] for d, o in outcomes.items()}
    talk_mu = math.log(150)

    def rows() -> Iterator[dict]:
        for i in range(count):
            direction = CallDirection.INBOUND if rng.random() < 0.6 else CallDirection.OUTBOUND
            status, _, cause = rng.choices(outcomes[direction], weights[direction])[0]
            if clients and rng.random() < 0.78:
                client_id, e164, national = rng.choice(clients)
            else:
                client_id = None
                e164, national = _saudi_number(UNKNOWN_NUMBERS_FROM + rng.randrange(4_000_000))
            if direction is CallDirection.INBOUND:
                dialled = e164 if rng.random() < 0.7 else e164[1:]
            else:
                dialled = national if rng.random() < 0.8 else f"{national[:3]} {national[3:6]} {national[6:]}"
            started = next(starts)
            answered = talk = None
            if status is CallStatus.COMPLETED:
                ring = int(rng.triangular(2, 30, 6))
                talk = max(5, min(3600, int(rng.lognormvariate(talk_mu, 0.9))))
                answered = started + timedelta(seconds=ring)
                ended = answered + timedelta(seconds=talk)
            else:
                ring = int(rng.uniform(15, 45)) if status in (CallStatus.MISSED, CallStatus.NO_ANSWER) else rng.randint(0, 8)
                ended = started + timedelta(seconds=ring)
            user_id, extension = rng.choice(agents) if agents else (None, None)
            client_cases = cases.get(client_id) if client_id else None
            yield {
                "tenant_id": tenant.id,
                "agent_user_id": user_id,
                "extension": extension,
                "direction": direction,
                "status": status,
                "remote_number": dialled,
                "remote_e164": e164,
                "client_id": client_id,
                "case_id": rng.choice(client_cases) if client_cases and rng.random() < 0.3 else None,
                "notes": rng.choice(CALL_NOTES) if status is CallStatus.COMPLETED and rng.random() < 0.12 else "",
                "started_at": started,
                "answered_at": answered,
                "ended_at": ended,
                "ring_seconds": ring,
                "talk_seconds": talk,
                "hangup_cause": cause,
                "sip_call_id": f"{rng.getrandbits(64):016x}{i:x}@{DEV_PBX_HOST}",
                "updated_at": ended,
            }

    return _bulk_insert(session, table, rows())


def seed_demo(
    *,
    session: Session,
    calls: int = 500,
    tenants: int = 1,
    clients_per_tenant: int = 80,
    password: str = DEMO_PASSWORD,
    now: datetime | None = None,
    random_seed: int = 2026,
) -> SeedReport:
    """Seed ``tenants`` demo firms (the first is Al-Waha Law Firm) sharing ``calls`` calls between them."""
    if tenants < 1 or tenants > 1000:
        raise Invalid("tenants", "tenants must be between 1 and 1000")
    if calls < 0:
        raise Invalid("calls", "calls cannot be negative")
    if clients_per_tenant < 0 or clients_per_tenant > 1_000_000:
        raise Invalid("clients_per_tenant", "clients per tenant must be between 0 and 1,000,000")
    if len(password) < accounts.MIN_PASSWORD_LENGTH:
        raise Invalid("password", f"a password needs at least {accounts.MIN_PASSWORD_LENGTH} characters")
    began = time.perf_counter()
    now = now or datetime.now(timezone.utc)
    report = SeedReport(password=password)
    password_hash = security.hash_password(password)
    for index, call_count in enumerate(_split(calls, tenants)):
        rng = random.Random(random_seed * 1000 + index)
        name = FIRM_NAMES[index] if index < len(FIRM_NAMES) else f"Demo Law Firm {index + 1}"
        domain = "demo.watheeq.local" if index == 0 else f"demo{index + 1}.watheeq.local"
        tenant = accounts.create_tenant(session=session, name=name, region="SA", timezone="Asia/Riyadh")
        staff = _seed_staff(session, tenant, domain, password_hash, did=f"+{DEMO_DID + index}")
        agents = [(user_id, number) for user_id, number, _ in staff]
        sip_of = {user_id: (number, sip_password) for user_id, number, sip_password in staff}
        for user in session.exec(tenant_select(User, tenant.id).order_by(User.id)):
            number, sip_password = sip_of.get(user.id, (None, None))
            report.logins.append(SeedLogin(tenant=tenant.name, email=user.email, role=user.role,
                                           extension=number, sip_password=sip_password))
        clients = _seed_clients(session, tenant, rng, clients_per_tenant, now)
        cases = _seed_cases(session, tenant, rng, clients, now)
        report.calls += _seed_calls(session, tenant, rng, call_count, now, agents, clients, cases)
        report.tenants.append(tenant)
        report.clients += len(clients)
        report.cases += sum(len(v) for v in cases.values())
    session.flush()
    report.seconds = time.perf_counter() - began
    return report
