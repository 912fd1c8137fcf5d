"""The incident list: who may open it, its filters (and the bad values they refuse), security
incidents kept from those who may not see them, overdue acknowledgements, the 30-day MTTA/MTTR
and breaches, the acknowledgement targets an admin sets, and the live channel that tells the page
when incidents changed.

Page tests run in the test's transaction. The live tests drive the served WebSocket stack in this
process (and once through the real server) on the real Redis channel layer; their pushes commit,
so they go out after commit as in production.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.db import database_sync_to_async
from django.db import transaction
from django.db.models import F
from django.test import Client
from django.utils import timezone
from django_tenants.utils import schema_context, tenant_context

from alerts import incident_live, incident_stats, services
from alerts.incident_intake import apply_notification
from alerts.intake import parse_notification
from alerts.models import AlertingSettings, Incident
from tenants import audit
from tenants.models import AuditEvent, Membership
from tenants.realtime.consumers import CLOSE_FORBIDDEN
from tests.helpers import client_on, host_of, unique, wait_for_message
from tests.websockets_client import (
    InProcessSocket,
    cookie_of,
    create_session,
    delete_sessions,
    open_socket,
    websocket_scope,
)

ACTOR = audit.Actor.system("incident list tests")
PAGES = ["/incidents/", "/incidents/rows/"]
# A deliberate quiet period: what is tested is that nothing arrives, which only a duration shows.
QUIET_WINDOW = 0.5
# Access that goes must close the socket within a second (tenants.realtime); the margin covers
# reading the close.
REVOKED_WITHIN = 1.25


# --- data -----------------------------------------------------------------------------------------


def make_incident(tenant, **fields) -> Incident:
    """An incident in `tenant`'s schema (this test's transaction): P2, triggered, started now."""
    values = {
        "fingerprint": uuid.uuid4().hex[:16],
        "started_at": timezone.now(),
        "alertname": unique("Probe"),
        "severity": "P2",
        "service": "checkout",
        **fields,
    }
    with tenant_context(tenant):
        return Incident.objects.create(**values)


def user_id(email: str) -> int:
    from django.contrib.auth import get_user_model

    return get_user_model().objects.get(email=email).pk


def ids_in(response) -> list[str]:
    """Public ids of the incident rows, in the order shown."""
    return re.findall(r'data-incident="([0-9a-f-]{36})"', response.content.decode())


def count_of(response, severity: str) -> int:
    found = re.search(rf'data-severity-count="{severity}">(\d+)<', response.content.decode())
    assert found, f"no count for {severity}"
    return int(found.group(1))


def stat(response, severity: str, name: str) -> str:
    """The text of one cell of the 30-day table (tags and spaces collapsed)."""
    html = response.content.decode()
    row = re.search(rf'<tr data-stats-severity="{severity}">(.*?)</tr>', html, re.S)
    assert row, f"no 30-day row for {severity}"
    cell = re.search(rf'data-stat="{name}">(.*?)</td>', row.group(1), re.S)
    assert cell, f"no {name} for {severity}"
    return " ".join(re.sub(r"<[^>]+>", " ", cell.group(1)).split())


@pytest.fixture
def operator(client_for) -> Client:
    return client_for("acme", "operator")


@pytest.fixture
def security(client_for) -> Client:
    return client_for("acme", "security")


@pytest.fixture
def admin(client_for) -> Client:
    return client_for("acme", "admin")


# --- who may look ---------------------------------------------------------------------------------


@pytest.mark.parametrize("path", PAGES)
@pytest.mark.parametrize(
    ("role", "status"),
    [("executive", 403), ("operator", 200), ("security", 200), ("admin", 200)],
)
def test_the_list_and_its_rows_are_for_the_roles_that_work_incidents(
    client_for, path, role, status
):
    assert client_for("acme", role).get(path).status_code == status


def test_an_anonymous_visitor_is_sent_to_sign_in(client_for):
    response = client_for("acme").get("/incidents/")
    assert response.status_code == 302
    assert "/accounts/login/" in response["Location"]


def test_rows_carry_what_the_page_and_other_tests_rely_on(acme, operator):
    service = unique("svc")
    incident = make_incident(
        acme,
        severity="P1",
        service=service,
        alertname="HighErrorRate",
        summary="Errors above 5% on checkout",
    )
    page = operator.get(f"/incidents/?service={service}")
    html = page.content.decode()
    assert page.status_code == 200
    assert 'id="incident-list"' in html
    assert 'id="live-status"' in html
    assert ids_in(page) == [str(incident.public_id)]
    assert f'data-incident="{incident.public_id}" data-status="triggered"' in html
    assert f'href="/incidents/{incident.public_id}/"' in html
    assert "HighErrorRate" in html and "Errors above 5% on checkout" in html
    assert [count_of(page, s) for s in ("P0", "P1", "P2", "P3")] == [0, 1, 0, 0]
    # The fragment holds the same rows and counts, without the page around them.
    rows = operator.get(f"/incidents/rows/?service={service}")
    assert ids_in(rows) == [str(incident.public_id)]
    assert count_of(rows, "P1") == 1
    assert "<html" not in rows.content.decode()


def test_an_incident_made_from_an_alertmanager_notification_is_listed(acme, operator):
    service = unique("svc")
    body = {
        "version": "4",
        "status": "firing",
        "receiver": "acme__portal",
        "groupKey": "{}:{}",
        "alerts": [
            {
                "status": "firing",
                "labels": {
                    "alertname": "QueueBacklog",
                    "tenant": "acme",
                    "severity": "P0",
                    "service": service,
                },
                "annotations": {"summary": "812 jobs waiting"},
                "startsAt": timezone.now().isoformat(),
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus:9090/graph",
                "fingerprint": uuid.uuid4().hex[:16],
            }
        ],
    }
    with tenant_context(acme):
        result = apply_notification(parse_notification(json.dumps(body).encode(), schema="acme"))
    (opened,) = result.opened
    page = operator.get(f"/incidents/?service={service}")
    assert ids_in(page) == [str(opened.public_id)]
    assert "812 jobs waiting" in page.content.decode()
    assert count_of(page, "P0") == 1


# --- filters --------------------------------------------------------------------------------------


def test_each_filter_narrows_the_list(acme, operator, client_for):
    service = unique("svc")
    now = timezone.now()
    me = user_id("operator@acme.example")
    colleague = user_id("security@acme.example")
    p0 = make_incident(acme, severity="P0", service=service, assignee_id=me)
    acked = make_incident(
        acme,
        severity="P1",
        service=service,
        category="performance",
        status="acknowledged",
        acknowledged_at=now,
        assignee_id=colleague,
        assignee_email="security@acme.example",
    )
    resolved = make_incident(
        acme, severity="P2", service=service, status="resolved", resolved_at=now
    )
    old = make_incident(acme, severity="P3", service=service, started_at=now - timedelta(days=10))
    other_service = make_incident(acme, severity="P0", service=service + "-other")

    def shown(query: str, client: Client = operator) -> set[str]:
        response = client.get(f"/incidents/?service={service}&{query}")
        assert response.status_code == 200, response.content[:500]
        return set(ids_in(response))

    def ids(*incidents: Incident) -> set[str]:
        return {str(i.public_id) for i in incidents}

    # Open (triggered or acknowledged) unless asked otherwise; the service is matched exactly.
    assert shown("") == ids(p0, acked, old)
    assert shown("status=open") == ids(p0, acked, old)
    assert shown("status=triggered") == ids(p0, old)
    assert shown("status=acknowledged") == ids(acked)
    assert shown("status=resolved") == ids(resolved)
    assert shown("status=all") == ids(p0, acked, resolved, old)
    assert str(other_service.public_id) not in shown("status=all")
    assert shown("status=all&severity=P0") == ids(p0)
    assert shown("status=all&category=performance") == ids(acked)
    assert shown("status=all&assignee=me") == ids(p0)
    assert shown("status=all&assignee=unassigned") == ids(resolved, old)
    membership = Membership.objects.get(tenant=acme, user_id=colleague).public_id
    assert shown(f"status=all&assignee={membership}") == ids(acked)
    assert shown("status=all&time=24h") == ids(p0, acked, resolved)
    assert shown("status=all&time=7d") == ids(p0, acked, resolved)
    assert shown("status=all&time=30d") == ids(p0, acked, resolved, old)
    assert shown("status=all&time=all") == ids(p0, acked, resolved, old)
    # Exact, as typed: a look-alike (Cyrillic ѕ) or a part of the name matches nothing.
    lookalike = service.replace("s", "\u0455", 1)
    assert operator.get(f"/incidents/?service={lookalike}&status=all").status_code == 200
    assert not ids_in(operator.get(f"/incidents/?service={lookalike}&status=all"))
    assert not ids_in(operator.get(f"/incidents/?service={service[:-1]}&status=all"))
    # "Me" is whoever looks.
    assert shown("status=all&assignee=me", client_for("acme", "security")) == ids(acked)
    # Counts follow the filters.
    response = operator.get(f"/incidents/?service={service}&status=all")
    assert [count_of(response, s) for s in ("P0", "P1", "P2", "P3")] == [1, 1, 1, 1]


def test_the_list_pages_by_fifty_and_keeps_the_filters_in_its_links(acme, operator):
    service = unique("svc")
    start = timezone.now() - timedelta(hours=1)
    made = [
        make_incident(acme, service=service, started_at=start + timedelta(seconds=n))
        for n in range(53)
    ]
    first = operator.get(f"/incidents/?service={service}")
    second = operator.get(f"/incidents/?service={service}&page=2")
    newest_first = [str(i.public_id) for i in reversed(made)]
    assert ids_in(first) == newest_first[:50]
    assert ids_in(second) == newest_first[50:]
    assert count_of(first, "P2") == 53
    assert f"service={service}&amp;page=2" in first.content.decode()


def test_filters_from_the_form_move_the_address_along(acme, operator):
    response = operator.get(
        "/incidents/rows/?severity=P0&status=open&category=&service=api&assignee=&time=all",
        HTTP_HX_REQUEST="true",
        HTTP_HX_TRIGGER="incident-filters",
    )
    assert response.status_code == 200
    assert response["HX-Push-Url"] == "/incidents/?severity=P0&service=api"
    # A live refetch (no trigger element) leaves the address alone.
    refetch = operator.get("/incidents/rows/?severity=P0", HTTP_HX_REQUEST="true")
    assert "HX-Push-Url" not in refetch


BAD_FILTERS = {
    "NUL in the service": ("service=api%00x", "Service"),
    "a line break in the service": ("service=api%0Ax", "Service"),
    "an over-long service": ("service=" + "s" * 201, "Service"),
    "an unknown severity": ("severity=P9", "Severity"),
    "a severity look-alike": ("severity=%D0%A00", "Severity"),  # Cyrillic Р
    "NUL in the severity": ("severity=P0%00", "Severity"),
    "an unknown status": ("status=closed", "Status"),
    "an unknown category": ("category=weather", "Category"),
    "an unknown time": ("time=1y", "Started"),
    "an unknown assignee": ("assignee=someone", "Assignee"),
    "another tenant's member": ("assignee={globex_member}", "Assignee"),
    "an over-long assignee": ("assignee=" + "a" * 5000, "Assignee"),
    "a page that is no number": ("page=two", "Page"),
    "a page of zero": ("page=0", "Page"),
    "a huge page": ("page=" + "9" * 40, "Page"),
}


@pytest.mark.parametrize("case", list(BAD_FILTERS))
@pytest.mark.parametrize("path", PAGES)
def test_bad_filters_are_named_on_the_page_never_a_crash(acme, globex, operator, case, path):
    query, field = BAD_FILTERS[case]
    member = Membership.objects.filter(tenant=globex).first().public_id
    response = operator.get(f"{path}?{query.format(globex_member=member)}")
    html = response.content.decode()
    assert response.status_code == 400
    assert "These filters cannot be used" in html
    assert re.search(rf"<li>{field}: [^<]+</li>", html), html[:2000]
    assert "\x00" not in html
    assert 'id="incident-list"' not in html


def test_another_tenants_incidents_never_show(acme, globex, operator, client_for):
    service = unique("svc")
    theirs = make_incident(globex, service=service, severity="P0")
    ours = make_incident(acme, service=service, severity="P0")
    for path in PAGES:
        assert ids_in(operator.get(f"{path}?service={service}")) == [str(ours.public_id)]
        globex_view = client_for("globex", "operator").get(f"{path}?service={service}")
        assert ids_in(globex_view) == [str(theirs.public_id)]


def test_an_empty_query_and_a_huge_page_number_still_answer(acme, operator):
    assert operator.get("/incidents/?severity=&status=&time=&page=").status_code == 200
    # Past the last page: the last page, not an error.
    assert operator.get("/incidents/?page=999").status_code == 200


# --- security incidents ---------------------------------------------------------------------------


@pytest.mark.parametrize("path", PAGES)
def test_security_incidents_are_only_for_security_and_admins(acme, operator, security, admin, path):
    service = unique("svc")
    ordinary = make_incident(acme, service=service, severity="P1")
    secret = make_incident(
        acme, service=service, severity="P1", category="security", alertname="BruteForceLogin"
    )
    seen_by_operator = operator.get(f"{path}?service={service}")
    assert ids_in(seen_by_operator) == [str(ordinary.public_id)]
    assert "BruteForceLogin" not in seen_by_operator.content.decode()
    assert count_of(seen_by_operator, "P1") == 1
    for client in (security, admin):
        response = client.get(f"{path}?service={service}")
        assert set(ids_in(response)) == {str(ordinary.public_id), str(secret.public_id)}
        assert count_of(response, "P1") == 2
    assert set(ids_in(security.get(f"{path}?service={service}&category=security"))) == {
        str(secret.public_id)
    }
    # The operator cannot even ask for them.
    refused = operator.get(f"{path}?service={service}&category=security")
    assert refused.status_code == 400
    assert "Category: Choose one of the listed categories." in refused.content.decode()


def test_the_security_category_is_offered_only_to_those_who_see_it(operator, security):
    assert 'value="security"' not in operator.get("/incidents/").content.decode()
    assert 'value="security"' in security.get("/incidents/").content.decode()


# --- acknowledgement targets on the list ----------------------------------------------------------


def test_unacknowledged_incidents_past_their_target_are_marked_and_counted(acme, operator):
    service = unique("svc")
    now = timezone.now()
    # Default targets: P0 5 min, P1 15 min, P3 a day.
    overdue = make_incident(
        acme, service=service, severity="P0", started_at=now - timedelta(minutes=10)
    )
    fresh = make_incident(
        acme, service=service, severity="P0", started_at=now - timedelta(minutes=2)
    )
    p1_overdue = make_incident(
        acme, service=service, severity="P1", started_at=now - timedelta(minutes=20)
    )
    p3_in_time = make_incident(
        acme, service=service, severity="P3", started_at=now - timedelta(minutes=20)
    )
    late = make_incident(
        acme,
        service=service,
        severity="P0",
        started_at=now - timedelta(minutes=30),
        status="acknowledged",
        acknowledged_at=now - timedelta(minutes=20),
    )
    html = operator.get(f"/incidents/?service={service}").content.decode()
    marked = set(re.findall(r'data-incident="([0-9a-f-]{36})"[^>]*data-ack-overdue', html))
    assert marked == {str(overdue.public_id), str(p1_overdue.public_id)}
    assert {str(fresh.public_id), str(p3_in_time.public_id)}.isdisjoint(marked)
    assert html.count(">ack overdue</span>") == 2
    assert 'data-overdue-count="P0">1 ack overdue' in html
    assert 'data-overdue-count="P1">1 ack overdue' in html
    # Acknowledged after its target: a breach that shows, but no longer overdue.
    late_row = re.search(rf'data-incident="{late.public_id}".*?</tr>', html, re.S).group(0)
    assert "acked late" in late_row and "data-ack-overdue" not in late_row

    # A longer target (the tenant's setting) clears the marks.
    with tenant_context(acme):
        services.update_ack_targets(targets={"P0": 60, "P1": 60, "P2": 60, "P3": 60}, actor=ACTOR)
    html = operator.get(f"/incidents/?service={service}").content.decode()
    assert "data-ack-overdue" not in html


# --- 30 days --------------------------------------------------------------------------------------


@pytest.fixture
def known_month(acme):
    """Only this test's incidents in the last 30 days (others moved back, in this transaction)."""
    now = timezone.now()
    with tenant_context(acme):
        Incident.objects.update(started_at=F("started_at") - timedelta(days=90))
    minutes = lambda n: now - timedelta(minutes=n)  # noqa: E731
    service = unique("svc")
    # P1 (target 15 min): acknowledged after 10 and 20 min (one breach), resolved after 30 and
    # 90 min; one still triggered after 20 min (a breach); one that cleared in 5 min unanswered.
    make_incident(
        acme,
        service=service,
        severity="P1",
        started_at=minutes(120),
        status="resolved",
        acknowledged_at=minutes(110),
        resolved_at=minutes(90),
    )
    make_incident(
        acme,
        service=service,
        severity="P1",
        started_at=minutes(120),
        status="resolved",
        acknowledged_at=minutes(100),
        resolved_at=minutes(30),
    )
    make_incident(acme, service=service, severity="P1", started_at=minutes(20))
    make_incident(
        acme,
        service=service,
        severity="P1",
        started_at=minutes(60),
        status="resolved",
        resolved_at=minutes(55),
    )
    # P0 (target 5 min): one acknowledged after 3 min, one started 40 days ago (outside).
    make_incident(
        acme,
        service=service,
        severity="P0",
        started_at=minutes(30),
        status="acknowledged",
        acknowledged_at=minutes(27),
    )
    make_incident(acme, service=service, severity="P0", started_at=now - timedelta(days=40))
    # A security P1, acknowledged after an hour: counted only for those who see it.
    make_incident(
        acme,
        service=service,
        severity="P1",
        category="security",
        started_at=minutes(120),
        status="acknowledged",
        acknowledged_at=minutes(60),
    )
    return service


def test_the_page_shows_mtta_mttr_and_breaches_of_thirty_days(known_month, operator, security):
    page = operator.get("/incidents/")
    assert stat(page, "P1", "incidents") == "4"
    assert stat(page, "P1", "mtta") == "15 min of 2"
    # Resolved after 30 min, 90 min and 5 min.
    assert stat(page, "P1", "mttr") == "41 min of 3"
    assert stat(page, "P1", "target") == "15 min"
    assert stat(page, "P1", "breaches") == "2"
    assert stat(page, "P0", "incidents") == "1"
    assert stat(page, "P0", "mtta") == "3 min of 1"
    assert stat(page, "P3", "target") == "1 d"
    assert stat(page, "P0", "mttr") == "—"
    assert stat(page, "P0", "breaches") == "0"
    assert stat(page, "P3", "incidents") == "0"
    assert re.search(r'data-stat="breaches-total">2<', page.content.decode())

    # Security staff also count the security incident (acknowledged after an hour: a breach).
    page = security.get("/incidents/")
    assert stat(page, "P1", "incidents") == "5"
    assert stat(page, "P1", "mtta") == "30 min of 3"
    assert stat(page, "P1", "breaches") == "3"


def test_the_stats_functions_on_a_known_dataset(known_month, acme):
    from tenants.roles import access_for_role

    now = timezone.now()
    with tenant_context(acme):
        visible = services.visible_incidents(access_for_role("operator"))
        stats = {
            s.severity: s for s in incident_stats.window_stats(visible, services.ack_targets(), now)
        }
        counts = incident_stats.severity_counts(
            visible.filter(service=known_month), services.ack_targets(), now
        )
    p1 = stats["P1"]
    assert (p1.incidents, p1.acknowledged, p1.resolved, p1.breaches) == (4, 2, 3, 2)
    assert abs(p1.mtta - timedelta(minutes=15)) < timedelta(seconds=1)
    assert abs(p1.mttr - timedelta(minutes=125 / 3)) < timedelta(seconds=1)
    assert stats["P2"].mtta is None and stats["P2"].incidents == 0
    by_severity = {c.severity: (c.count, c.overdue) for c in counts}
    # Every status counts here (the list narrows by status before counting); only the P1
    # triggered 20 minutes ago is overdue.
    assert by_severity == {"P0": (2, 1), "P1": (4, 1), "P2": (0, 0), "P3": (0, 0)}


@pytest.mark.parametrize(
    ("delta", "text"),
    [
        (None, "—"),
        (timedelta(seconds=42), "42 s"),
        (timedelta(minutes=12, seconds=20), "12 min"),
        (timedelta(hours=3, minutes=5), "3 h 05 min"),
        (timedelta(days=2, hours=4, minutes=10), "2 d 4 h"),
        (timedelta(hours=4), "4 h"),
        (timedelta(days=1, minutes=20), "1 d"),
        (timedelta(seconds=-5), "0 s"),
    ],
)
def test_durations_read_as_people_read_them(delta, text):
    assert incident_stats.duration_text(delta) == text


# --- the acknowledgement targets form -------------------------------------------------------------

GOOD_TARGETS = {"P0": "10", "P1": "30", "P2": "120", "P3": "2880"}


def stored_targets(tenant) -> dict:
    with tenant_context(tenant):
        return AlertingSettings.objects.get().ack_targets


def test_an_admin_sets_the_targets_and_it_is_audited(acme, admin):
    response = admin.post("/incidents/targets/", GOOD_TARGETS)
    assert response.status_code == 302
    assert response["Location"] == "/incidents/"
    assert stored_targets(acme) == {"P0": 10, "P1": 30, "P2": 120, "P3": 2880}
    with tenant_context(acme):
        event = AuditEvent.objects.filter(action="incident.ack_targets_updated").latest("seq")
    assert event.after == {"P0": 10, "P1": 30, "P2": 120, "P3": 2880}
    page = admin.get("/incidents/").content.decode()
    assert 'name="P0" value="10"' in page
    assert "Acknowledgement targets saved." in page


def test_only_admins_see_and_use_the_targets_form(acme, operator, security):
    before = stored_targets(acme)
    for client in (operator, security):
        assert 'action="/incidents/targets/"' not in client.get("/incidents/").content.decode()
        assert client.post("/incidents/targets/", GOOD_TARGETS).status_code == 403
    assert stored_targets(acme) == before


def test_the_targets_form_needs_its_csrf_token(acme):
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.get(email="admin@acme.example")
    strict = client_on("acme", user, enforce_csrf_checks=True)
    before = stored_targets(acme)
    assert strict.post("/incidents/targets/", GOOD_TARGETS).status_code == 403
    assert stored_targets(acme) == before


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("P0", "0", "At least 1 minute."),
        ("P1", "10081", "At most 10080 minutes (a week)."),
        ("P2", "abc", "Minutes as a whole number."),
        ("P3", "1\x00", "Minutes as a whole number."),
        ("P0", "9" * 400, "At most 10080 minutes (a week)."),
        ("P1", "", "Give the minutes."),
        ("P2", "1.5", "Minutes as a whole number."),
    ],
)
def test_bad_targets_are_refused_on_their_field_and_nothing_is_written(
    acme, admin, field, value, message
):
    before = stored_targets(acme)
    with tenant_context(acme):
        events = AuditEvent.objects.count()
    response = admin.post("/incidents/targets/", {**GOOD_TARGETS, field: value})
    html = response.content.decode()
    assert response.status_code == 400
    assert f"{field} (minutes): {message}" in html
    assert "\x00" not in html
    assert stored_targets(acme) == before
    with tenant_context(acme):
        assert AuditEvent.objects.count() == events


def test_the_targets_update_takes_only_a_post(admin):
    assert admin.get("/incidents/targets/").status_code == 405


# --- the live channel -----------------------------------------------------------------------------


def push(slug: str, changes: list[tuple[str, bool]]) -> None:
    """Tell the desk, as the services do, that incidents changed (committed, pushed on commit)."""
    with schema_context(slug), transaction.atomic():
        incident_live.push_on_commit(changes)


def desk_socket(slug: str, cookie: str | None) -> InProcessSocket:
    from portal.asgi import application

    return InProcessSocket(
        application, websocket_scope(host_of(slug), "/ws/incidents/", cookie=cookie)
    )


async def next_json(socket_: InProcessSocket, timeout: float = 5) -> dict:
    return json.loads((await socket_.receive(timeout=timeout))["text"])


@pytest.fixture
def sessions(django_db_setup, django_db_blocker):
    made = []

    def make(email: str) -> str:
        made.append(create_session(email, django_db_blocker))
        return cookie_of(made[-1])

    yield make
    delete_sessions(made, django_db_blocker)


@pytest.fixture
def committed_acme(django_db_setup, django_db_blocker):
    """acme, for tests that commit (no test transaction around them)."""
    from tenants.models import Tenant

    with django_db_blocker.unblock():
        return Tenant.objects.get(schema_name="acme")


@pytest.fixture
def newcomer(committed_acme, django_db_blocker, sessions):
    """`newcomer(role)`: a new member of acme (committed), signed in; removed afterwards."""
    from tenants.accounts.users import get_or_create_user

    made = []

    def make(role: str) -> tuple[str, str]:
        email = f"{role}-{uuid.uuid4().hex[:8]}@acme.example"
        with django_db_blocker.unblock():
            user = get_or_create_user(email)
            made.append(user)
            membership = Membership.objects.create(tenant=committed_acme, user=user, role=role)
        return str(membership.public_id), sessions(email)

    yield make
    with django_db_blocker.unblock():
        for user in made:
            user.delete()


def run(scenario, django_db_blocker):
    with django_db_blocker.unblock():
        return async_to_sync(scenario)()


def test_a_change_reaches_the_desk_and_a_security_change_only_security(sessions, django_db_blocker):
    operator_cookie = sessions("operator@acme.example")
    security_cookie = sessions("security@acme.example")
    globex_cookie = sessions("operator@globex.example")
    ordinary, secret = str(uuid.uuid4()), str(uuid.uuid4())

    async def scenario():
        operator = desk_socket("acme", operator_cookie)
        security = desk_socket("acme", security_cookie)
        globex = desk_socket("globex", globex_cookie)
        for socket_ in (operator, security, globex):
            assert (await socket_.open())["type"] == "websocket.accept"
        heard = {}
        await database_sync_to_async(push)("acme", [(ordinary, False)])
        heard["operator"] = await next_json(operator)
        heard["security"] = await next_json(security)
        await database_sync_to_async(push)("acme", [(secret, True)])
        heard["security secret"] = await next_json(security)
        heard["operator quiet"] = await operator.communicator.receive_nothing(QUIET_WINDOW)
        heard["globex quiet"] = await globex.communicator.receive_nothing(0.01)
        for socket_ in (operator, security, globex):
            await socket_.hang_up(30)
        return heard

    heard = run(scenario, django_db_blocker)
    assert heard["operator"] == {"type": "changed", "incidents": [ordinary]}
    assert heard["security"] == {"type": "changed", "incidents": [ordinary]}
    assert heard["security secret"] == {"type": "changed", "incidents": [secret]}
    assert heard["operator quiet"] is True
    assert heard["globex quiet"] is True


@pytest.mark.parametrize(
    ("who", "slug"),
    [
        (None, "acme"),
        ("executive@acme.example", "acme"),
        ("operator@globex.example", "acme"),
    ],
    ids=["anonymous", "executive", "member of another tenant"],
)
def test_the_desk_refuses_who_may_not_see_incidents(sessions, django_db_blocker, who, slug):
    cookie = sessions(who) if who else None

    async def scenario():
        socket_ = desk_socket(slug, cookie)
        answer = await socket_.open()
        await socket_.ended_within(1.0)
        return answer

    assert run(scenario, django_db_blocker) == {"type": "websocket.close", "code": CLOSE_FORBIDDEN}


def test_a_role_change_moves_the_socket_out_of_and_into_the_security_group(
    committed_acme, newcomer, django_db_blocker
):
    from tenants import services as tenant_services

    membership, cookie = newcomer("security")
    change_role = sync_to_async(tenant_services.change_role)
    ordinary, secret = str(uuid.uuid4()), str(uuid.uuid4())

    async def scenario():
        socket_ = desk_socket("acme", cookie)
        assert (await socket_.open())["type"] == "websocket.accept"
        heard = {}
        await database_sync_to_async(push)("acme", [(secret, True)])
        heard["as security"] = await next_json(socket_)

        await change_role(
            tenant=committed_acme, membership_id=membership, role="operator", actor=ACTOR
        )
        # The page is told to refetch: what it may show has changed.
        heard["demoted"] = await next_json(socket_)
        await database_sync_to_async(push)("acme", [(secret, True)])
        heard["quiet as operator"] = await socket_.communicator.receive_nothing(QUIET_WINDOW)
        await database_sync_to_async(push)("acme", [(ordinary, False)])
        heard["ordinary as operator"] = await next_json(socket_)

        await change_role(
            tenant=committed_acme, membership_id=membership, role="admin", actor=ACTOR
        )
        heard["promoted"] = await next_json(socket_)
        await database_sync_to_async(push)("acme", [(secret, True)])
        heard["as admin"] = await next_json(socket_)
        await socket_.hang_up(30)
        return heard

    heard = run(scenario, django_db_blocker)
    assert heard["as security"] == {"type": "changed", "incidents": [secret]}
    assert heard["demoted"] == {"type": "changed", "incidents": []}
    assert heard["quiet as operator"] is True
    assert heard["ordinary as operator"] == {"type": "changed", "incidents": [ordinary]}
    assert heard["promoted"] == {"type": "changed", "incidents": []}
    assert heard["as admin"] == {"type": "changed", "incidents": [secret]}


def test_losing_the_incidents_closes_the_socket_within_a_second(
    committed_acme, newcomer, django_db_blocker
):
    from tenants import services as tenant_services

    membership, cookie = newcomer("operator")

    async def scenario():
        socket_ = desk_socket("acme", cookie)
        assert (await socket_.open())["type"] == "websocket.accept"
        await socket_.send_text(json.dumps({"type": "ping"}))
        pong = await next_json(socket_)
        started = time.monotonic()
        await sync_to_async(tenant_services.remove_member)(
            tenant=committed_acme, membership_id=membership, actor=ACTOR
        )
        closed = await socket_.receive(timeout=REVOKED_WITHIN)
        elapsed = time.monotonic() - started
        await socket_.ended_within(1.0)
        return pong, closed, elapsed

    pong, closed, elapsed = run(scenario, django_db_blocker)
    assert pong == {"type": "pong"}
    assert closed == {"type": "websocket.close", "code": CLOSE_FORBIDDEN}
    assert elapsed < REVOKED_WITHIN


def test_the_served_app_pushes_changes_to_the_desk(live_server_url, sessions, django_db_blocker):
    cookie = sessions("operator@acme.example")
    changed = str(uuid.uuid4())
    with open_socket(live_server_url, host_of("acme"), "/ws/incidents/", cookie) as ws:
        ws.send(json.dumps({"type": "ping"}))
        assert wait_for_message(ws, lambda m: m.get("type") == "pong", "pong") == {"type": "pong"}
        with django_db_blocker.unblock():
            push("acme", [(changed, False)])
        message = wait_for_message(ws, lambda m: m.get("type") == "changed", "a change")
    assert message == {"type": "changed", "incidents": [changed]}


def test_started_times_read_relative_with_the_exact_time_on_hover(acme, operator):
    service = unique("svc")
    started = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)
    make_incident(acme, service=service, started_at=started)
    html = operator.get(f"/incidents/?service={service}").content.decode()
    assert 'title="2026-01-05 10:00:00 UTC"' in html
    assert re.search(r">\d+\xa0(day|month|year)s? ago</time>", html), html
    make_incident(acme, service=service, started_at=timezone.now())
    html = operator.get(f"/incidents/?service={service}").content.decode()
    assert ">just now</time>" in html
