"""Dashboards, panels and the metric catalog live in each tenant's schema: two tenants never
share a row. Samples are kept in a table of their own (see the migration `0002`): it is written
with COPY and read with SQL aggregates, never through the ORM.
"""

import uuid

from django.db import models


class Dashboard(models.Model):
    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    title = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["title"]

    def __str__(self) -> str:
        return self.title


class MetricDefinition(models.Model):
    """One entry of the tenant's metric catalog: what may be pushed under `name`."""

    class Type(models.TextChoices):
        COUNTER = "counter", "Counter"
        GAUGE = "gauge", "Gauge"
        HISTOGRAM = "histogram", "Histogram"

    class Category(models.TextChoices):
        BUSINESS = "business", "Business"
        TECHNICAL = "technical", "Technical"
        SECURITY = "security", "Security"

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    name = models.CharField(max_length=200, unique=True)
    type = models.CharField(max_length=16, choices=Type.choices, default=Type.GAUGE)
    unit = models.CharField(max_length=32, blank=True)
    help = models.TextField(blank=True)
    labels = models.JSONField(default=list, blank=True)
    category = models.CharField(max_length=16, choices=Category.choices, default=Category.TECHNICAL)
    cardinality_limit = models.PositiveIntegerField(default=1000)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def allowed_labels(self) -> frozenset[str]:
        return frozenset(self.labels or [])


class MetricSeries(models.Model):
    """One label set of a metric; its latest sample is kept here for the scrape endpoint."""

    metric = models.ForeignKey(MetricDefinition, on_delete=models.CASCADE, related_name="series")
    # The labels as canonical JSON (sorted keys): the unique key of a series.
    labels_key = models.TextField()
    labels = models.JSONField(default=dict)
    last_value = models.FloatField(null=True)
    last_at = models.DateTimeField(null=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["metric", "labels_key"], name="series_unique_labels")
        ]

    def __str__(self) -> str:
        return f"{self.metric_id}{self.labels_key}"


class MetricSettings(models.Model):
    """The tenant's store settings: one row (pk=1)."""

    retention_days = models.PositiveIntegerField(default=90)
    # Samples accepted per minute over all batches: protects the shared database.
    max_samples_per_minute = models.PositiveIntegerField(default=12_000_000)

    def __str__(self) -> str:
        return f"retention {self.retention_days} d"


class Panel(models.Model):
    """One chart or number on a dashboard, with the query that feeds it."""

    class Kind(models.TextChoices):
        STAT = "stat", "KPI stat"
        TIMESERIES = "timeseries", "Time series"
        BAR = "bar", "Bar"
        GAUGE = "gauge", "Gauge"
        TABLE = "table", "Table"

    class Source(models.TextChoices):
        BUILTIN = "builtin", "Built-in store"
        PROMETHEUS = "prometheus", "Prometheus"

    class Aggregation(models.TextChoices):
        AVG = "avg", "Average"
        SUM = "sum", "Sum"
        MAX = "max", "Maximum"
        MIN = "min", "Minimum"
        COUNT = "count", "Count"
        P50 = "p50", "50th percentile"
        P95 = "p95", "95th percentile"
        P99 = "p99", "99th percentile"
        LATEST = "latest", "Latest (summed over series)"

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    dashboard = models.ForeignKey(Dashboard, on_delete=models.CASCADE, related_name="panels")
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.TIMESERIES)
    title = models.CharField(max_length=200)
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.BUILTIN)
    metric = models.CharField(max_length=200, blank=True)
    aggregation = models.CharField(
        max_length=8, choices=Aggregation.choices, default=Aggregation.AVG
    )
    label_filter = models.JSONField(default=dict, blank=True)
    promql = models.TextField(blank=True)
    unit = models.CharField(max_length=32, blank=True)
    thresholds = models.JSONField(default=list, blank=True)
    # How a series is named in the legend: "{{instance}} {{mode}}" takes its labels' values.
    legend = models.CharField(max_length=200, blank=True)
    x = models.PositiveSmallIntegerField(default=0)
    y = models.PositiveSmallIntegerField(default=0)
    w = models.PositiveSmallIntegerField(default=6)
    h = models.PositiveSmallIntegerField(default=4)
    position = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["position", "id"]

    def __str__(self) -> str:
        return self.title


class GrafanaPush(models.Model):
    """A dashboard the tenant keeps in Grafana (its folder there), and where that stands.

    The portal's copy is the source: every change is pushed again, over what Grafana holds.
    Stopping, or deleting the dashboard, leaves the row in `removing` until Grafana has let the
    dashboard go, so a failed removal is retried and shown rather than forgotten.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SYNCED = "synced", "Synced"
        FAILED = "failed", "Failed"
        REMOVING = "removing", "Removing"

    dashboard = models.OneToOneField(
        Dashboard, null=True, on_delete=models.SET_NULL, related_name="grafana_push"
    )
    # Grafana's uid of the dashboard, kept for the removal once the dashboard is gone.
    grafana_uid = models.CharField(max_length=40, unique=True)
    title = models.CharField(max_length=200)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    # When the dashboard last changed; a push that started before it is stale.
    changed_at = models.DateTimeField()
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True, default="")
    applied_hash = models.CharField(max_length=64, blank=True, default="")
    grafana_version = models.PositiveIntegerField(null=True, blank=True)
    grafana_url = models.CharField(max_length=500, blank=True, default="")
    # Panels Grafana cannot show, with the reason: [{"panel": title, "reason": text}, ...]
    skipped = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["title"]

    def __str__(self) -> str:
        return f"{self.title}: {self.get_status_display()}"
