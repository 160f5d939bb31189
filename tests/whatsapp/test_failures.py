"""Every failure of the line is classified in one place, and each class has a sentence that says
what to do, in English and Arabic, that never repeats the raw error."""

from __future__ import annotations

import pytest
from sqlalchemy.engine import Engine

from services import db
from services.errors import Forbidden
from services.models import Role
from services.whatsapp import store
from services.whatsapp.failures import SENTENCES, Failure, classify, sentence
from services.whatsapp.simulator import FAILURES
from tests import factories as f

# neonize 0.5.2's own dial errors on this machine, through a proxy on a closed loopback port.
REAL_PROXY_ERRORS = [
    'failed to dial whatsapp web websocket: failed to WebSocket dial: failed to send handshake request: Get "https://web.whatsapp.com/ws/chat": '
    "proxyconnect tcp: dial tcp 127.0.0.1:60725: connect: connection refused",
    'failed to dial whatsapp web websocket: failed to WebSocket dial: failed to send handshake request: Get "https://web.whatsapp.com/ws/chat": '
    "socks connect tcp 127.0.0.1:60725->web.whatsapp.com:443: dial tcp 127.0.0.1:60725: connect: connection refused",
]
DNS_ERRORS = [
    'Get "https://web.whatsapp.com/ws/chat": dial tcp: lookup web.whatsapp.com on 10.255.255.53:53: no such host',
    'Get "https://web.whatsapp.com/ws/chat": dial tcp: lookup web.whatsapp.com: Temporary failure in name resolution',
    "dial tcp 157.240.0.53:443: connect: network is unreachable",
]


@pytest.mark.parametrize("text", REAL_PROXY_ERRORS)
def test_a_proxy_that_is_down_is_told_apart(text: str) -> None:
    assert classify(text) == Failure.PROXY_UNREACHABLE


@pytest.mark.parametrize("text", DNS_ERRORS)
def test_no_route_out_is_recognised_from_go_net_errors(text: str) -> None:
    assert classify(text) == Failure.NO_ROUTE


@pytest.mark.parametrize("kind", sorted(FAILURES))
def test_every_failure_the_simulator_injects_is_classified_as_itself(kind: str) -> None:
    text, hint = FAILURES[kind]
    assert classify(text, hint) == Failure(kind)


def test_a_structured_hint_wins_and_the_unrecognised_stays_unknown() -> None:
    assert classify("whatever the text", Failure.STREAM_REPLACED) == Failure.STREAM_REPLACED
    assert classify("proto: cannot parse invalid wire-format data") == Failure.UNKNOWN
    assert classify(None) == Failure.UNKNOWN
    assert classify("bad things", default=Failure.SEND_FAILED) == Failure.SEND_FAILED


@pytest.mark.parametrize("code", list(Failure))
def test_every_class_has_a_sentence_in_both_languages_without_raw_text(code: Failure) -> None:
    english, arabic = SENTENCES[code]
    assert english and arabic and english != arabic
    assert sentence(code) == english and sentence(code, "ar") == arabic
    assert any("\u0600" <= ch <= "\u06ff" for ch in arabic)
    for raw in ("dial", "tcp", "lookup", "127.0.0.1", "proto", "websocket"):
        assert raw not in english.lower()


def test_only_an_owner_or_admin_reads_the_raw_detail(engine: Engine) -> None:
    with db.session_scope() as session:
        tenant = f.make_tenant(session)
        admin = f.principal_of(f.make_user(session, tenant, Role.ADMIN))
        agent = f.principal_of(f.make_user(session, tenant, Role.AGENT))
        store.init_session(session=session, tenant_id=tenant.id, actor=admin)
        assert store.restore_active_sessions(session=session, worker_id="w", lease_seconds=30)
        store.record_error(session=session, tenant_id=tenant.id, worker_id="w", reason=DNS_ERRORS[0], retry_count=1, next_retry_at=None)
        status = store.get_session_status(session=session, tenant_id=tenant.id, actor=admin)
        assert status.error_code == "no_route" and "10.255" not in status.model_dump_json()
        assert store.get_error_detail(session=session, tenant_id=tenant.id, actor=admin) == DNS_ERRORS[0]
        with pytest.raises(Forbidden):
            store.get_error_detail(session=session, tenant_id=tenant.id, actor=agent)
