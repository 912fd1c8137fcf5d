"""PortalTask, queues, results and lifecycle hooks: how background work behaves everywhere.

Tenant tasks refuse to run without a tenant, only transient errors are retried (bounded, with
backoff), results are stored only where a caller reads them, tasks are routed to their queues,
and a newly provisioned tenant gets its default dashboards through the lifecycle hook.
"""

from __future__ import annotations

import smtplib
import uuid
from collections import Counter

import pytest
import redis
from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django_tenants.utils import get_public_schema_name, schema_context, tenant_context

from portal import devstack
from portal.backends.base import BackendError
from portal.celery import app
from portal.tasks import PortalTask, TenantRequired, backoff_seconds
from tests.conftest import wait_for

TASK_TIMEOUT = 30
attempts: Counter[str] = Counter()
ran_in: list[str] = []


@app.task(name="tests.platform.where_am_i")
def where_am_i() -> str:
    ran_in.append(connection.schema_name)
    return connection.schema_name


@app.task(name="tests.platform.platform_where_am_i", platform_wide=True)
def platform_where_am_i() -> str:
    return connection.schema_name


@app.task(name="tests.platform.failing", platform_wide=True, max_retries=3)
def failing(key: str, error: str, failures: int) -> int:
    """Fails `failures` times with the error named `error`, then returns the attempt count."""
    attempts[key] += 1
    if attempts[key] <= failures:
        raise {
            "transient": BackendError("503", backend="Prometheus", permanent=False),
            "permanent": BackendError("400", backend="Prometheus", permanent=True),
            "connection": ConnectionRefusedError("refused"),
            "bug": KeyError("no such thing"),
        }[error]
    return attempts[key]


@pytest.fixture
def key() -> str:
    return uuid.uuid4().hex


# ---- tenant required --------------------------------------------------------------------------


def test_a_tenant_task_sent_from_no_tenant_is_refused_and_does_not_run(db):
    ran_in.clear()
    with schema_context(get_public_schema_name()):
        result = where_am_i.apply()
    assert result.failed()
    assert isinstance(result.result, TenantRequired)
    assert isinstance(result.result, RuntimeError)
    assert "tests.platform.where_am_i must be sent from a tenant's context" in str(result.result)
    assert ran_in == []


@pytest.mark.parametrize("slug", ["acme", "globex"])
def test_a_tenant_task_runs_in_the_senders_schema(db, slug):
    from tenants.models import Tenant

    with tenant_context(Tenant.objects.get(schema_name=slug)):
        result = where_am_i.apply()
    assert result.successful()
    assert result.result == slug


def test_a_platform_wide_task_runs_in_public(db):
    with schema_context(get_public_schema_name()):
        result = platform_where_am_i.apply()
    assert result.successful()
    assert result.result == get_public_schema_name()


def test_every_task_of_the_portal_is_a_portal_task():
    app.loader.import_default_modules()
    ours = {name: task for name, task in app.tasks.items() if not name.startswith("celery.")}
    assert "tenants.tasks.send_invitation_email" in ours
    assert all(isinstance(task, PortalTask) for task in ours.values()), [
        name for name, task in ours.items() if not isinstance(task, PortalTask)
    ]
    # The platform-wide ones are few and named: everything else needs a tenant.
    assert {
        name for name, task in ours.items() if task.platform_wide and name.startswith("tenants.")
    } == {
        "tenants.tasks.send_invitation_email",
        "tenants.tasks.refresh_all_tenant_summaries",
        "tenants.tasks.record_worker_heartbeat",
        "tenants.tasks.record_audit_chain_heads",
    }


# ---- retries ----------------------------------------------------------------------------------


@pytest.mark.parametrize("error", ["transient", "connection"])
def test_a_transient_error_is_retried_until_the_call_succeeds(key, error):
    result = failing.apply(args=[key, error, 2])
    assert result.successful()
    assert result.result == 3
    assert attempts[key] == 3


def test_a_transient_error_that_persists_is_given_up_on_after_max_retries(key):
    result = failing.apply(args=[key, "transient", 99])
    assert result.failed()
    assert attempts[key] == failing.max_retries + 1 == 4
    assert isinstance(result.result, BackendError)
    assert result.result.permanent is False


@pytest.mark.parametrize("error, exc_type", [("permanent", BackendError), ("bug", KeyError)])
def test_a_permanent_error_or_a_bug_is_not_retried(key, error, exc_type):
    result = failing.apply(args=[key, error, 99])
    assert result.failed()
    assert isinstance(result.result, exc_type)
    assert attempts[key] == 1


def test_retries_back_off_exponentially_with_jitter(key, monkeypatch):
    countdowns: list[float] = []
    original = failing.retry

    def spy(*args, **kwargs):
        countdowns.append(kwargs["countdown"])
        return original(*args, **kwargs)

    monkeypatch.setattr(failing, "retry", spy)
    failing.apply(args=[key, "transient", 99])
    base = failing.retry_backoff_base
    assert len(countdowns) == failing.max_retries + 1  # the last call gives up instead
    for retries, countdown in enumerate(countdowns):
        ceiling = base * 2**retries
        assert ceiling / 2 <= countdown <= ceiling


def test_the_backoff_doubles_and_is_capped():
    for retries in range(12):
        ceiling = min(600.0, 2.0 * 2**retries)
        delays = {backoff_seconds(retries, base=2.0, cap=600.0) for _ in range(20)}
        assert all(ceiling / 2 <= delay <= ceiling for delay in delays)
        assert len(delays) > 1  # jittered: tasks failing together come back spread out
    assert backoff_seconds(40, base=2.0, cap=600.0) <= 600.0


def test_the_retry_policy_classifies_errors():
    task = failing
    assert task.is_transient(BackendError("x", permanent=False))
    assert not task.is_transient(BackendError("x", permanent=True))
    assert task.is_transient(TimeoutError())
    assert task.is_transient(ConnectionResetError())
    assert not task.is_transient(PermissionError("rules directory"))
    assert not task.is_transient(FileNotFoundError("promtool"))
    assert not task.is_transient(ValueError())
    assert task.is_transient(smtplib.SMTPServerDisconnected("gone"))
    assert task.is_transient(smtplib.SMTPResponseException(451, b"try later"))
    assert not task.is_transient(smtplib.SMTPResponseException(550, b"no such user"))
    assert not task.is_transient(smtplib.SMTPRecipientsRefused({"a@b": (550, b"no")}))


# ---- queues -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, queue",
    [
        ("alerts.tasks.sync_tenant_rules", "sync"),
        ("dashboards.tasks.sync_grafana", "sync"),
        ("tenants.tasks.send_invitation_email", "notify"),
        ("alerts.tasks.notify_receivers", "notify"),
        ("tenants.tasks.refresh_tenant_summary", "default"),
        ("tenants.tasks.record_worker_heartbeat", "default"),
    ],
)
def test_tasks_are_routed_to_their_queue(name, queue):
    routed = app.amqp.router.route({}, name)["queue"].name
    assert routed == settings.PORTAL_TASK_QUEUES[queue]


def test_the_queues_carry_this_installations_prefix_and_the_demo_worker_consumes_all():
    prefix = settings.CELERY_TASK_DEFAULT_QUEUE
    queues = settings.PORTAL_TASK_QUEUES
    assert queues == {"default": prefix, "sync": f"{prefix}.sync", "notify": f"{prefix}.notify"}
    routed = {route["queue"] for route in settings.CELERY_TASK_ROUTES.values()}
    assert routed <= set(devstack.task_queues())
    assert set(devstack.task_queues()) == set(queues.values())


# ---- results ----------------------------------------------------------------------------------


def _result_keys(client: redis.Redis) -> set[bytes]:
    return set(client.scan_iter(match="*celery-task-meta-*"))


@pytest.fixture
def redis_client():
    client = redis.Redis.from_url(settings.REDIS_URL)
    yield client
    client.close()


def test_a_task_whose_result_nobody_reads_leaves_no_result_key(celery_worker, redis_client):
    from tenants.summary import worker_last_seen
    from tenants.tasks import record_worker_heartbeat

    before = worker_last_seen()
    result = record_worker_heartbeat.delay()
    wait_for(lambda: worker_last_seen() != before, TASK_TIMEOUT, message="the heartbeat")
    assert not [k for k in _result_keys(redis_client) if result.id.encode() in k]


def test_a_summary_fan_out_stores_no_tenant_data_as_results(
    celery_worker, redis_client, acme, globex
):
    from tenants.summary import SUMMARY_CACHE_KEY
    from tenants.tasks import refresh_all_tenant_summaries

    for tenant in (acme, globex):
        with tenant_context(tenant):
            cache.delete(SUMMARY_CACHE_KEY)
    before = _result_keys(redis_client)

    refresh_all_tenant_summaries.delay()

    def refreshed() -> bool:
        for tenant in (acme, globex):
            with tenant_context(tenant):
                if cache.get(SUMMARY_CACHE_KEY) is None:
                    return False
        return True

    wait_for(refreshed, TASK_TIMEOUT, message="both tenants' summaries")
    assert _result_keys(redis_client) == before


def test_a_result_a_caller_reads_is_stored_under_the_prefix_and_expires(
    celery_worker, redis_client, globex
):
    from tenants.tasks import refresh_tenant_summary

    with tenant_context(globex):
        result = refresh_tenant_summary.delay()
    assert result.get(timeout=TASK_TIMEOUT)["tenant"] == "globex"
    prefix = settings.CACHES["default"]["KEY_PREFIX"]
    key = f"{prefix}:celery:celery-task-meta-{result.id}".encode()
    assert redis_client.exists(key)
    assert 0 < redis_client.ttl(key) <= settings.CELERY_RESULT_EXPIRES
    result.forget()


def test_a_tenant_task_sent_from_public_fails_in_the_worker(celery_worker):
    from tenants.tasks import refresh_tenant_summary

    with schema_context(get_public_schema_name()):
        result = refresh_tenant_summary.delay()
    result.get(timeout=TASK_TIMEOUT, propagate=False)
    assert result.failed()
    assert isinstance(result.result, RuntimeError)
    assert "tenant's context" in str(result.result)
    result.forget()


# ---- lifecycle: default dashboards ------------------------------------------------------------


def test_a_newly_provisioned_tenant_gets_its_default_dashboards(
    db, django_capture_on_commit_callbacks
):
    from dashboards.models import Dashboard
    from tenants import audit
    from tenants.models import AuditEvent
    from tenants.provisioning import provision_tenant

    with django_capture_on_commit_callbacks(execute=True):
        tenant = provision_tenant(
            slug="initech", name="Initech", admin_email=None, actor=audit.Actor.system("test")
        )
    with tenant_context(tenant):
        dashboards = list(Dashboard.objects.order_by("pk").values_list("pk", "title"))
    assert dashboards == [(1, "Executive overview"), (2, "Operations"), (3, "Security")]
    events = AuditEvent.objects.filter(tenant=tenant, action="dashboard.created")
    assert {event.actor_label for event in events} == {"default dashboards"}
    assert events.count() == 3


def test_the_default_dashboards_are_created_once(db, acme):
    from dashboards.defaults import create_default_dashboards
    from dashboards.models import Dashboard

    with tenant_context(acme):
        before = Dashboard.objects.count()
        assert create_default_dashboards(acme) == []
        assert Dashboard.objects.count() == before


def test_the_seeded_tenants_got_theirs_from_the_hook(db, acme, globex):
    from dashboards.models import Dashboard

    for tenant in (acme, globex):
        with tenant_context(tenant):
            assert Dashboard.objects.filter(pk=1, title="Executive overview").exists()
