"""The tenant's custom metrics in the Prometheus text format, for Prometheus to scrape.

Served as `GET /api/v1/metrics` (`dashboards.api.ingest`). Each series shows its latest sample
with `tenant="<schema>"` set here, never taken from what was pushed (ingest refuses a pushed
`tenant` label). Prometheus authenticates with a `read` token.
"""

from __future__ import annotations

from collections.abc import Iterator

from dashboards.models import MetricDefinition, MetricSeries

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def exposition(schema_name: str) -> Iterator[str]:
    """Lines of the text format: every series of the catalog with its latest sample."""
    series_by_metric: dict[int, list[MetricSeries]] = {}
    for one in MetricSeries.objects.filter(last_at__isnull=False).order_by("id"):
        series_by_metric.setdefault(one.metric_id, []).append(one)
    for metric in MetricDefinition.objects.all():
        rows = series_by_metric.get(metric.pk)
        if not rows:
            continue
        if metric.help:
            yield f"# HELP {metric.name} {_help(metric.help)}"
        yield f"# TYPE {metric.name} {metric.type}"
        for one in rows:
            labels = dict(one.labels)
            name = labels.pop("__name__", metric.name)
            pairs = [f'tenant="{_escape(schema_name)}"'] + [
                f'{key}="{_escape(str(value))}"' for key, value in sorted(labels.items())
            ]
            at_ms = int(one.last_at.timestamp() * 1000)
            yield f"{name}{{{','.join(pairs)}}} {one.last_value!r} {at_ms}"


def exposition_text(schema_name: str) -> str:
    return "\n".join(exposition(schema_name)) + "\n"
