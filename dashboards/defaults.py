"""What every new tenant starts with, created when the tenant is provisioned: the metric catalog
of the standard KPIs and three dashboards (Executive, Operations, Security) built on it.
"""

from __future__ import annotations

from dashboards import services
from dashboards.models import Dashboard
from tenants import audit

B, T, S = "business", "technical", "security"

# name, type, unit, help, labels, category
DEFAULT_METRICS: tuple[tuple[str, str, str, str, list[str], str], ...] = (
    ("revenue_eur", "gauge", "EUR", "Revenue booked per minute.", ["channel"], B),
    ("checkout_conversion_ratio", "gauge", "%", "Checkouts per visit, in percent.", [], B),
    ("active_users", "gauge", "users", "People active in the last five minutes.", [], B),
    ("availability_ratio", "gauge", "%", "Share of successful probes, in percent.", [], B),
    ("error_budget_remaining_ratio", "gauge", "%", "Error budget left this month.", [], B),
    ("open_incidents", "gauge", "", "Open incidents by severity.", ["severity"], B),
    ("open_major_incidents", "gauge", "", "Open P0 and P1 incidents.", [], B),
    ("compliance_score_ratio", "gauge", "%", "Controls passing, in percent.", [], B),
    ("http_request_duration_ms", "gauge", "ms", "Request latency.", ["endpoint"], T),
    ("http_requests_per_second", "gauge", "req/s", "Request throughput.", ["endpoint"], T),
    ("http_errors_per_second", "gauge", "err/s", "Error responses.", ["class"], T),
    ("cpu_usage_ratio", "gauge", "%", "CPU in use.", ["host"], T),
    ("memory_usage_ratio", "gauge", "%", "Memory in use.", ["host"], T),
    ("failed_signins", "gauge", "", "Failed sign-ins per minute.", [], S),
    ("suspicious_events", "gauge", "", "Suspicious activity per minute.", ["kind"], S),
    ("vulnerability_findings", "gauge", "", "Open vulnerability findings.", ["severity"], S),
    ("compliance_violations", "gauge", "", "Failing controls per framework.", ["framework"], S),
    ("open_security_incidents", "gauge", "", "Open security incidents.", [], S),
)


def _panel(title, kind, metric, aggregation, x, y, w, h, unit="", thresholds=(), labels=None):
    return {
        "title": title,
        "kind": kind,
        "source": "builtin",
        "metric": metric,
        "aggregation": aggregation,
        "label_filter": labels or {},
        "unit": unit,
        "thresholds": list(thresholds),
        "x": x,
        "y": y,
        "w": w,
        "h": h,
    }


DEFAULT_DASHBOARDS: tuple[dict, ...] = (
    {
        "title": "Executive overview",
        "description": "Business KPIs and SLOs at a glance.",
        "panels": [
            _panel("Revenue", "stat", "revenue_eur", "sum", 0, 0, 3, 3, "EUR"),
            _panel("Conversion rate", "stat", "checkout_conversion_ratio", "avg", 3, 0, 3, 3, "%"),
            _panel("Active users", "stat", "active_users", "max", 6, 0, 3, 3),
            _panel("Availability", "stat", "availability_ratio", "avg", 9, 0, 3, 3, "%"),
            _panel("Revenue per minute", "bar", "revenue_eur", "sum", 0, 3, 6, 4, "EUR"),
            _panel("Active users", "timeseries", "active_users", "avg", 6, 3, 6, 4),
            _panel(
                "Error budget left",
                "gauge",
                "error_budget_remaining_ratio",
                "avg",
                0,
                7,
                4,
                4,
                "%",
            ),
            # Recorded by the portal from its incident desk and compliance checks (portal_kpis).
            _panel("Open P0/P1 incidents", "stat", "open_major_incidents", "latest", 4, 7, 4, 4),
            _panel("Compliance score", "stat", "compliance_score_ratio", "latest", 8, 7, 4, 4, "%"),
        ],
    },
    {
        "title": "Operations",
        "description": "Latency, throughput, errors and resources.",
        "panels": [
            _panel(
                "Latency p50", "timeseries", "http_request_duration_ms", "p50", 0, 0, 4, 4, "ms"
            ),
            _panel(
                "Latency p95",
                "timeseries",
                "http_request_duration_ms",
                "p95",
                4,
                0,
                4,
                4,
                "ms",
                (300, 800),
            ),
            _panel(
                "Latency p99",
                "timeseries",
                "http_request_duration_ms",
                "p99",
                8,
                0,
                4,
                4,
                "ms",
                (500, 1500),
            ),
            _panel(
                "Throughput", "timeseries", "http_requests_per_second", "sum", 0, 4, 6, 4, "req/s"
            ),
            _panel(
                "4xx errors",
                "bar",
                "http_errors_per_second",
                "sum",
                6,
                4,
                3,
                4,
                "err/s",
                labels={"class": "4xx"},
            ),
            _panel(
                "5xx errors",
                "bar",
                "http_errors_per_second",
                "sum",
                9,
                4,
                3,
                4,
                "err/s",
                labels={"class": "5xx"},
            ),
            _panel("CPU", "gauge", "cpu_usage_ratio", "avg", 0, 8, 6, 4, "%", (70, 90)),
            _panel("Memory", "timeseries", "memory_usage_ratio", "avg", 6, 8, 6, 4, "%"),
        ],
    },
    {
        "title": "Security",
        "description": "Sign-ins, suspicious activity, findings and violations.",
        "panels": [
            _panel("Failed sign-ins", "stat", "failed_signins", "sum", 0, 0, 4, 3),
            _panel(
                "Open security incidents", "stat", "open_security_incidents", "latest", 4, 0, 4, 3
            ),
            _panel("Compliance violations", "stat", "compliance_violations", "latest", 8, 0, 4, 3),
            _panel("Failed sign-ins", "timeseries", "failed_signins", "sum", 0, 3, 6, 4),
            _panel("Suspicious activity", "bar", "suspicious_events", "sum", 6, 3, 6, 4),
            _panel(
                "Vulnerability findings", "timeseries", "vulnerability_findings", "max", 0, 7, 12, 4
            ),
        ],
    },
)


def create_default_catalog(actor: audit.Actor, names: frozenset[str] | None = None) -> None:
    """The standard KPI metrics (those named in `names`, if given) the tenant does not have."""
    existing = set(services.list_metrics().values_list("name", flat=True))
    for name, kind, unit, help_text, labels, category in DEFAULT_METRICS:
        if name not in existing and (names is None or name in names):
            services.create_metric(
                name=name,
                type=kind,
                unit=unit,
                help=help_text,
                labels=labels,
                category=category,
                actor=actor,
            )


def create_default_dashboards(tenant, **kwargs) -> list[Dashboard]:
    """Receiver of `tenant_provisioned`; runs in the new tenant's schema. Idempotent."""
    if Dashboard.objects.exists():
        return []
    actor = audit.Actor.system("default dashboards")
    create_default_catalog(actor)
    made = []
    for spec in DEFAULT_DASHBOARDS:
        dashboard = services.create_dashboard(
            title=spec["title"], description=spec["description"], actor=actor
        )
        for position, panel in enumerate(spec["panels"]):
            services.create_panel(
                dashboard_id=dashboard.public_id, position=position, actor=actor, **panel
            )
        made.append(dashboard)
    return made
