"""The audit log: events are recorded in the caller's transaction and scoped by firm."""

from __future__ import annotations

import pytest

from services import audit
from services.models import Role
from tests.factories import make_tenant, make_user, principal_of


def test_recorded_event_is_listed_newest_first_with_its_actor(session) -> None:
    firm = make_tenant(session)
    admin = make_user(session, firm, Role.ADMIN)
    audit.record(session=session, tenant_id=firm.id, actor=principal_of(admin), action="user.create", object_type="user", object_id=7, detail={"role": "AGENT"})
    audit.record(session=session, tenant_id=firm.id, actor=None, action="call.delete", object_type="call", object_id=9)
    events = audit.list_events(session=session, tenant_id=firm.id)
    assert [e.action for e in events] == ["call.delete", "user.create"]
    assert events[1].actor_email == admin.email and events[1].object_id == "7" and events[1].detail == {"role": "AGENT"}
    assert events[0].actor_user_id is None and events[0].actor_email is None


def test_events_of_another_firm_are_never_listed(session) -> None:
    firm, other = make_tenant(session), make_tenant(session)
    audit.record(session=session, tenant_id=other.id, actor=None, action="call.delete", object_type="call", object_id=1)
    assert audit.list_events(session=session, tenant_id=firm.id) == []
    assert len(audit.list_events(session=session, tenant_id=other.id, action="call.delete", object_type="call", object_id=1)) == 1


def test_an_actor_of_another_firm_is_refused(session) -> None:
    firm, other = make_tenant(session), make_tenant(session)
    outsider = make_user(session, other, Role.OWNER)
    with pytest.raises(ValueError):
        audit.record(session=session, tenant_id=firm.id, actor=principal_of(outsider), action="x", object_type="call")


def test_a_rolled_back_change_leaves_no_event(engine) -> None:
    from sqlmodel import Session

    with Session(engine) as s:
        firm = make_tenant(s)
        s.commit()
        firm_id = firm.id
    with Session(engine) as s:
        audit.record(session=s, tenant_id=firm_id, actor=None, action="call.delete", object_type="call", object_id=3)
        s.rollback()
    with Session(engine) as s:
        assert audit.list_events(session=s, tenant_id=firm_id) == []
