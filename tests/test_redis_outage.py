"""While Redis is down the portal still answers: every page and API a person or an application
uses answers without a server error; ingest, the alert intake and a write that queues a backend
sync still store what they are sent (the sync is left pending for the reconciler); and all of it
works again once Redis is back. The server and its Redis are processes of this
test (`tests.restartable`); the database is the test run's.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.helpers import host_of
from tests.restartable import Restartable, running
from tests.test_dashboard_live import forget_revenue
from tests.test_incident_intake import alert, document

pytestmark = pytest.mark.timeout(180)

# What an admin of acme opens in a working day (GET), by path on acme's host.
# A value no seeded sample has; the samples this test pushes are removed afterwards.
OUTAGE_REVENUE = 0.123456

PAGES = [
    "/",
    "/dashboards/",
    "/dashboards/metrics/",
    "/incidents/",
    "/alerts/rules/",
    "/alerts/receivers/",
    "/alerts/policy/",
    "/alerts/silences/",
    "/compliance/",
    "/audit/",
    "/members/",
    "/tokens/",
    "/settings/",
    "/accounts/profile/",
    "/admin/",
    "/api/v1/dashboards/",
    "/api/v1/incidents/",
    "/healthz",
]


@pytest.fixture(scope="module")
def served(process_env, tmp_path_factory) -> Iterator[Restartable]:
    with running(process_env, tmp_path_factory.mktemp("outage")) as parts:
        yield parts


@pytest.fixture
def credentials(django_db_setup, django_db_blocker, session_cookie) -> Iterator[dict]:
    """An admin's session cookie, an ingest token and acme's intake secret (committed)."""
    from alerts.models import AlertingSettings
    from tenants import audit, services
    from tenants.models import ApiToken, Tenant
    from tests.helpers import run_committed

    name = f"outage-{uuid.uuid4().hex[:8]}"

    def create() -> dict:
        from django_tenants.utils import tenant_context

        acme = Tenant.objects.get(schema_name="acme")
        token = services.create_token(
            tenant=acme,
            name=name,
            scopes=["ingest", "read", "write"],
            actor=audit.Actor.system("outage"),
        ).secret
        with tenant_context(acme):
            secret = AlertingSettings.objects.get().webhook_secret
        return {"token": token, "intake": secret, "tenant_id": str(acme.public_id)}

    with django_db_blocker.unblock():
        made = run_committed(create)
    made["cookie"] = session_cookie("admin@acme.example")
    yield made
    with django_db_blocker.unblock():
        run_committed(lambda: ApiToken.objects.filter(name=name).delete())
        run_committed(forget_groups)
        run_committed(lambda: forget_revenue("acme", [OUTAGE_REVENUE]))


def forget_groups() -> None:
    from django_tenants.utils import schema_context

    from alerts.models import RuleGroup

    with schema_context("acme"):
        RuleGroup.objects.filter(name__startswith="outage-").delete()


def answers(served: Restartable, credentials: dict) -> dict[str, int]:
    """The status of each page, of an ingest batch and of an alert delivery, right now."""
    base = f"http://127.0.0.1:{served.port}"
    acme = {"Host": f"{host_of('acme')}:{served.port}"}
    statuses = {}
    with httpx.Client(base_url=base, timeout=15.0, trust_env=False) as client:
        for path in PAGES:
            headers = dict(acme)
            if path.startswith("/api/"):
                headers["Authorization"] = f"Bearer {credentials['token']}"
            else:
                headers["Cookie"] = credentials["cookie"]
            statuses[path] = client.get(path, headers=headers).status_code
        sample = {"name": "revenue_eur", "labels": {"channel": "web"}, "value": OUTAGE_REVENUE}
        statuses["ingest"] = client.post(
            "/api/v1/metrics",
            headers={**acme, "Authorization": f"Bearer {credentials['token']}"},
            json={"samples": [sample]},
        ).status_code
        # A write that queues a backend sync after its commit.
        statuses["rule group"] = client.post(
            "/api/v1/rule-groups/",
            headers={**acme, "Authorization": f"Bearer {credentials['token']}"},
            json={"name": f"outage-{uuid.uuid4().hex[:8]}"},
        ).status_code
        firing = alert(
            uuid.uuid4().hex[:16],
            starts=dt.datetime.now(dt.UTC).isoformat(),
            name=f"Outage{uuid.uuid4().hex[:6]}",
        )
        statuses["intake"] = client.post(
            f"/hooks/alertmanager/{credentials['tenant_id']}/",
            headers={
                "Host": f"{host_of(None)}:{served.port}",
                "Authorization": f"Bearer {credentials['intake']}",
            },
            json=document(firing),
        ).status_code
    return statuses


def test_pages_ingest_and_the_intake_answer_while_redis_is_down(served, credentials):
    before = answers(served, credentials)
    # Every page really answers (a sign-in redirect would match itself before and after).
    assert {path: before[path] for path in PAGES} == dict.fromkeys(PAGES, 200), before
    assert before["ingest"] == 202 and before["intake"] == 202
    assert before["rule group"] == 201

    served.stop_redis()
    try:
        during = answers(served, credentials)
    finally:
        served.start_redis()
    failed = {path: code for path, code in during.items() if code >= 500}
    assert not failed, f"server errors while Redis was down: {failed}"
    # Nothing an application or Alertmanager sends is lost.
    assert during["ingest"] == 202 and during["intake"] == 202
    assert {path: code for path, code in during.items() if code != before[path]} == {}

    after = answers(served, credentials)
    assert after == before
