"""Custom-metric ingest: all or nothing, every bad sample named, limits, scrape, retention."""

from __future__ import annotations

import json
import time
import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone
from django_tenants.utils import tenant_context

from dashboards import services
from dashboards.models import MetricSeries, MetricSettings
from tenants import audit
from tests.factories import ApiTokenFactory
from tests.helpers import bearer, host_of, send_json

ACTOR = audit.Actor.system("ingest tests")


def stored_count(tenant) -> int:
    with tenant_context(tenant), connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM dashboards_sample")
        return cursor.fetchone()[0]


@pytest.fixture
def metric_name() -> str:
    return f"orders_{uuid.uuid4().hex[:8]}"


@pytest.fixture
def catalog(acme, metric_name):
    """A gauge `metric_name` (labels region, plan; at most 3 series) and a counter in acme."""
    with tenant_context(acme):
        gauge = services.create_metric(
            name=metric_name,
            type="gauge",
            labels=["region", "plan"],
            category="business",
            cardinality_limit=3,
            actor=ACTOR,
        )
        services.create_metric(
            name=f"{metric_name}_total", type="counter", category="business", actor=ACTOR
        )
    return gauge


def token_client(tenant, *scopes: str) -> Client:
    _, secret = ApiTokenFactory(tenant=tenant, scopes=list(scopes))
    return Client(HTTP_HOST=host_of(tenant.slug), **bearer(secret))


def push(client: Client, samples: list[dict]):
    return send_json(client, "post", "/api/v1/metrics", {"samples": samples})


def test_it_stores_a_json_batch_and_keeps_the_latest_value(acme, catalog, metric_name):
    client = token_client(acme, "ingest")
    now = time.time()
    response = push(
        client,
        [
            {"name": metric_name, "labels": {"region": "eu"}, "value": 1, "timestamp": now - 20},
            {"name": metric_name, "labels": {"region": "eu"}, "value": 2.5, "timestamp": now},
            {"name": metric_name, "labels": {"region": "us"}, "value": 7},
        ],
    )
    assert response.status_code == 202, response.content
    assert response.json()["stored"] == 3
    with tenant_context(acme):
        series = {s.labels["region"]: s for s in MetricSeries.objects.filter(metric=catalog)}
    assert set(series) == {"eu", "us"}
    assert series["eu"].last_value == 2.5
    assert stored_count(acme) >= 3


def test_it_refuses_a_batch_naming_each_bad_sample_and_stores_nothing(acme, catalog, metric_name):
    client = token_client(acme, "ingest")
    before = stored_count(acme)
    now = time.time()
    good = {"name": metric_name, "labels": {"region": "eu"}, "value": 1}
    response = push(
        client,
        [
            good,
            {"name": "nobody_declared_this", "value": 1},
            {"name": metric_name, "labels": {"colour": "red"}, "value": 1},
            {"name": metric_name, "value": "12"},
            {"name": metric_name, "value": 1, "timestamp": now + 3600},
            {"name": metric_name, "value": 1, "timestamp": now - 400 * 86400},
            {"name": metric_name, "labels": {"tenant": "globex"}, "value": 1},
            {"name": f"{metric_name}_total", "value": -1},
        ],
    )
    assert response.status_code == 400, response.content
    errors = {e["index"]: " ".join(e["errors"]) for e in response.json()["errors"]}
    assert set(errors) == {1, 2, 3, 4, 5, 6, 7}
    assert "not in the metric catalog" in errors[1]
    assert "labels.colour: not allowed" in errors[2]
    assert "value: must be a number" in errors[3]
    assert "in the future" in errors[4]
    assert "older than the retention" in errors[5]
    assert "labels.tenant: reserved" in errors[6]
    assert "counter cannot be negative" in errors[7]
    assert stored_count(acme) == before
    with tenant_context(acme):
        assert not MetricSeries.objects.filter(metric=catalog).exists()


def test_it_reads_the_text_format_and_names_bad_lines(acme, catalog, metric_name):
    client = token_client(acme, "ingest")
    at_ms = int(time.time() * 1000)
    body = (
        f"# TYPE {metric_name} gauge\n"
        f'{metric_name}{{region="eu",plan="pro"}} 3.5 {at_ms}\n'
        f'{metric_name}{{region="us"}} 4\n'
    )
    ok = client.post("/api/v1/metrics", body, content_type="text/plain; version=0.0.4")
    assert ok.status_code == 202, ok.content
    assert ok.json()["stored"] == 2
    before = stored_count(acme)
    bad = client.post(
        "/api/v1/metrics",
        f'{metric_name}{{region="eu"}} 1\n{metric_name} NaN\n{metric_name} +Inf\nnot a sample\n',
        content_type="text/plain",
    )
    assert bad.status_code == 400
    errors = {e["index"]: " ".join(e["errors"]) for e in bad.json()["errors"]}
    assert set(errors) == {2, 3, 4}
    assert "finite" in errors[2] and "finite" in errors[3]
    assert "not a sample" in errors[4]
    assert stored_count(acme) == before


def test_it_refuses_series_over_the_cardinality_limit(acme, catalog, metric_name):
    client = token_client(acme, "ingest")
    samples = [
        {"name": metric_name, "labels": {"region": region}, "value": 1}
        for region in ("eu", "us", "ap", "sa")
    ]
    response = push(client, samples)
    assert response.status_code == 400
    [error] = response.json()["errors"]
    assert error["index"] == 3
    assert "cardinality limit of 3" in error["errors"][0]
    with tenant_context(acme):
        assert not MetricSeries.objects.filter(metric=catalog).exists()


def test_it_refuses_a_batch_over_the_rate_limit(acme, catalog, metric_name):
    with tenant_context(acme):
        MetricSettings.objects.update_or_create(pk=1, defaults={"max_samples_per_minute": 5})
    client = token_client(acme, "ingest")
    before = stored_count(acme)
    response = push(client, [{"name": metric_name, "value": i} for i in range(6)])
    assert response.status_code == 429
    assert "samples per minute" in response.json()["detail"]
    assert stored_count(acme) == before


def test_it_refuses_bodies_that_are_no_batch(acme, catalog):
    client = token_client(acme, "ingest")
    assert send_json(client, "post", "/api/v1/metrics", {"samples": "x"}).status_code == 400
    assert send_json(client, "post", "/api/v1/metrics", {"samples": []}).status_code == 400
    nan = client.post(
        "/api/v1/metrics", '{"samples": [{"name": "x", "value": NaN}]}', "application/json"
    )
    assert nan.status_code == 400


def test_only_ingest_tokens_of_the_tenant_may_push(acme, globex, catalog, metric_name):
    sample = [{"name": metric_name, "value": 1}]
    assert push(token_client(acme, "read"), sample).status_code == 403
    _, secret = ApiTokenFactory(tenant=acme, scopes=["ingest"])
    on_globex = Client(HTTP_HOST=host_of(globex.slug), **bearer(secret))
    assert push(on_globex, sample).status_code == 401


def test_scrape_shows_the_tenants_latest_values_with_its_tenant_label(
    acme, globex, catalog, metric_name
):
    assert (
        push(
            token_client(acme, "ingest"),
            [{"name": metric_name, "labels": {"region": "eu"}, "value": 42}],
        ).status_code
        == 202
    )
    acme_text = token_client(acme, "read").get("/api/v1/metrics")
    assert acme_text.status_code == 200
    assert acme_text["Content-Type"].startswith("text/plain; version=0.0.4")
    body = acme_text.content.decode()
    assert f"# TYPE {metric_name} gauge" in body
    assert f'{metric_name}{{tenant="acme",region="eu"}} 42.0 ' in body
    globex_text = token_client(globex, "read").get("/api/v1/metrics").content.decode()
    assert metric_name not in globex_text
    assert token_client(acme, "ingest").get("/api/v1/metrics").status_code == 403


def test_retention_deletes_samples_older_than_the_tenants_setting(acme, catalog, metric_name):
    client = token_client(acme, "ingest")
    now = timezone.now()
    old = (now - timedelta(days=5)).timestamp()
    assert (
        push(
            client,
            [
                {"name": metric_name, "value": 1, "timestamp": old},
                {"name": metric_name, "value": 2},
            ],
        ).status_code
        == 202
    )
    with tenant_context(acme):
        services.update_metric_settings(retention_days=2, actor=ACTOR)
        removed = services.expire_samples()
        assert removed >= 1
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM dashboards_sample WHERE ts < %s", [now - timedelta(days=2)]
            )
            assert cursor.fetchone()[0] == 0
            cursor.execute("SELECT count(*) FROM dashboards_sample WHERE value = 2")
            assert cursor.fetchone()[0] >= 1


def test_catalog_api_creates_metrics_and_names_bad_fields(client_for, acme):
    operator = client_for("acme", "operator")
    name = f"signups_{uuid.uuid4().hex[:6]}"
    created = send_json(
        operator,
        "post",
        "/api/v1/metric-catalog/",
        {
            "name": name,
            "type": "counter",
            "category": "business",
            "labels": ["plan"],
            "cardinality_limit": 50,
        },
    )
    assert created.status_code == 201, created.content
    assert created.json()["labels"] == ["plan"]
    bad = send_json(
        operator,
        "post",
        "/api/v1/metric-catalog/",
        {"name": "9bad name", "type": "meter", "category": "business", "labels": ["tenant"]},
    )
    assert bad.status_code == 400
    assert set(bad.json()) >= {"name", "type", "labels"}
    executive = client_for("acme", "executive")
    assert (
        send_json(
            executive, "post", "/api/v1/metric-catalog/", {"name": "x", "type": "gauge"}
        ).status_code
        == 403
    )
    assert json.loads(executive.get("/api/v1/metric-catalog/").content)["count"] >= 1


def test_the_retention_task_runs_in_every_tenant(acme, globex, eager_tasks):
    from dashboards import store
    from dashboards.tasks import expire_samples_all

    ancient = timezone.now() - timedelta(days=400)
    for tenant in (acme, globex):
        with tenant_context(tenant):
            metric = services.create_metric(
                name=f"old_{uuid.uuid4().hex[:8]}", type="gauge", actor=ACTOR
            )
            series = MetricSeries.objects.create(metric=metric, labels={}, labels_key="{}")
            store.copy_rows([(series.pk, ancient, 1.0)])
    connection.set_schema_to_public()
    assert expire_samples_all.delay().get() >= 2
    for tenant in (acme, globex):
        with tenant_context(tenant), connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM dashboards_sample WHERE ts <= %s", [ancient])
            assert cursor.fetchone()[0] == 0


# --- Batches at volume, allowance, exact times --------------------------------------------------


def rate_key(now) -> str:
    from dashboards.ingest import RATE_WINDOW_SECONDS

    return f"dashboards:ingest:{int(now.timestamp()) // RATE_WINDOW_SECONDS}"


@pytest.fixture
def fixed_now(monkeypatch):
    """One instant for the whole test: the rate window cannot turn over in its middle."""
    from types import SimpleNamespace

    from dashboards import ingest

    now = timezone.now()
    monkeypatch.setattr(ingest, "timezone", SimpleNamespace(now=lambda: now))
    return now


@pytest.mark.parametrize("failing", ["store_encoded", "update_latest"])
def test_a_batch_the_database_refuses_gives_its_allowance_back(
    acme, catalog, metric_name, fixed_now, monkeypatch, failing
):
    from django.core.cache import cache
    from django.db import DatabaseError

    from dashboards import ingest, store

    batch = [ingest.RawSample(i, metric_name, {"region": "eu"}, float(i)) for i in range(40)]
    with tenant_context(acme):
        ingest.ingest(batch[:10])
        charged = cache.get(rate_key(fixed_now))
        assert charged >= 10

        def refuse(*args, **kwargs):
            raise DatabaseError("disk full")

        working = getattr(store, failing)
        monkeypatch.setattr(store, failing, refuse)
        with pytest.raises(DatabaseError):
            ingest.ingest(batch)
        assert cache.get(rate_key(fixed_now)) == charged
        monkeypatch.setattr(store, failing, working)
        assert ingest.ingest(batch) == 40
        assert cache.get(rate_key(fixed_now)) == charged + 40


def test_a_batch_reads_the_store_settings_once(acme, catalog, metric_name):
    from django.test.utils import CaptureQueriesContext

    from dashboards.ingest import settings_row

    with tenant_context(acme):
        settings_row()  # the row exists, as it does after a tenant's first batch
    client = token_client(acme, "ingest")
    with CaptureQueriesContext(connection) as captured:
        response = push(client, [{"name": metric_name, "value": i} for i in range(5)])
    assert response.status_code == 202
    reads = [q for q in captured.captured_queries if "dashboards_metricsettings" in q["sql"]]
    assert len(reads) == 1


def test_numbers_past_any_float_are_named_not_a_server_error(acme, catalog, metric_name):
    client = token_client(acme, "ingest")
    before = stored_count(acme)
    response = push(
        client,
        [
            {"name": metric_name, "value": 10**400},
            {"name": metric_name, "value": 1, "timestamp": 10**400},
            {"name": metric_name, "value": 1, "timestamp": 1e300},
        ],
    )
    assert response.status_code == 400, response.content
    errors = {e["index"]: " ".join(e["errors"]) for e in response.json()["errors"]}
    assert "value: must be finite" in errors[0]
    assert errors[1] == "timestamp: out of range"
    assert errors[2] == "timestamp: out of range"
    assert stored_count(acme) == before


def test_every_kind_of_timestamp_is_stored_to_the_microsecond(acme, metric_name):
    from datetime import UTC, datetime
    from datetime import timezone as tz

    epoch = datetime(1970, 1, 1, tzinfo=UTC)

    with tenant_context(acme):
        metric = services.create_metric(
            name=metric_name, type="gauge", labels=["region"], actor=ACTOR
        )
    client = token_client(acme, "ingest")
    base = int(time.time()) - 600
    # A fraction that multiplying by a million, then rounding, would put a microsecond off.
    tricky = next(
        t
        for t in (base + 0.25 + k * 1e-7 for k in range(1, 5000))
        if round(t * 1e6)
        != (datetime.fromtimestamp(t, tz=UTC) - epoch) // timedelta(microseconds=1)
    )
    timestamps = [
        base,  # whole seconds
        tricky,  # rounded at the microsecond as datetime rounds it
        base + 0.9999996,  # rounded up into the next second
        datetime.fromtimestamp(base + 7, tz=UTC).isoformat(),
        datetime.fromtimestamp(base + 8.5, tz=tz(timedelta(hours=2))).isoformat(),
    ]
    samples = [
        {"name": metric_name, "labels": {"region": f"r{i}"}, "value": i, "timestamp": t}
        for i, t in enumerate(timestamps)
    ]
    samples.append({"name": metric_name, "labels": {"region": "now"}, "value": 9})
    # Numbers only (read all at once), then text and none mixed in (converted one by one).
    assert push(client, samples[:3]).status_code == 202
    assert push(client, samples[3:]).status_code == 202
    with tenant_context(acme):
        stored = {s.labels["region"]: s.last_at for s in MetricSeries.objects.filter(metric=metric)}
    for i, t in enumerate(timestamps):
        expected = (
            datetime.fromisoformat(t) if isinstance(t, str) else datetime.fromtimestamp(t, tz=UTC)
        )
        assert stored[f"r{i}"] == expected, i
    assert abs((stored["now"] - timezone.now()).total_seconds()) < 60


def test_one_label_set_is_one_series_whatever_its_order(acme, globex, metric_name):
    with tenant_context(acme):
        services.create_metric(
            name=metric_name, type="gauge", labels=["region", "plan"], actor=ACTOR
        )
    client = token_client(acme, "ingest")
    at = time.time() - 30
    response = push(
        client,
        [
            {
                "name": metric_name,
                "labels": {"region": "eu", "plan": "pro"},
                "value": 1,
                "timestamp": at,
            },
            {
                "name": metric_name,
                "labels": {"plan": "pro", "region": "eu"},
                "value": 2,
                "timestamp": at,
            },
            {
                "name": metric_name,
                "labels": {"region": "eu", "plan": "pro"},
                "value": 3,
                "timestamp": at - 5,
            },
        ],
    )
    assert response.status_code == 202, response.content
    with tenant_context(acme):
        [series] = MetricSeries.objects.filter(metric__name=metric_name)
    # Of two samples at the same instant the later in the batch is the latest; an older one
    # after them does not move it back.
    assert series.last_value == 2
    with tenant_context(acme), connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*), sum(n) FROM dashboards_rollup_5m WHERE series_id = %s", [series.pk]
        )
        assert cursor.fetchone()[1] == 3


def test_a_large_batch_of_many_series_is_stored_whole(acme, metric_name):
    with tenant_context(acme):
        metric = services.create_metric(
            name=metric_name, type="counter", labels=["shard"], cardinality_limit=50, actor=ACTOR
        )
    client = token_client(acme, "ingest")
    now = time.time()
    samples = [
        {
            "name": metric_name,
            "labels": {"shard": f"s{i % 40}"},
            "value": i // 40,
            "timestamp": now - 3000 + i * 0.5,
        }
        for i in range(6000)
    ]
    response = push(client, samples)
    assert response.status_code == 202, response.content
    assert response.json()["stored"] == 6000
    with tenant_context(acme):
        series = {s.labels["shard"]: s for s in MetricSeries.objects.filter(metric=metric)}
        assert len(series) == 40
        assert series["s39"].last_value == 149
        with connection.cursor() as cursor:
            ids = [s.pk for s in series.values()]
            for table in ("dashboards_sample", "dashboards_rollup_5m", "dashboards_rollup_1h"):
                cursor.execute(
                    f"SELECT {'count(*)' if table == 'dashboards_sample' else 'sum(n)'} "
                    f"FROM {table} WHERE series_id = ANY(%s)",
                    [ids],
                )
                assert cursor.fetchone()[0] == 6000, table
    # One negative counter among them: the batch is refused and says which.
    samples[4321]["value"] = -1
    refused = push(client, samples)
    assert refused.status_code == 400
    assert refused.json()["errors"] == [
        {"index": 4321, "name": metric_name, "errors": ["value: a counter cannot be negative"]}
    ]
