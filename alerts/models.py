"""Alerting state of one tenant (its own schema): rules, who is told, silences, sync state."""

from __future__ import annotations

import uuid

from django.db import models
from encrypted_fields.fields import EncryptedTextField


class Severity(models.TextChoices):
    P0 = "P0", "P0 critical"
    P1 = "P1", "P1 major"
    P2 = "P2", "P2 minor"
    P3 = "P3", "P3 info"


class Category(models.TextChoices):
    AVAILABILITY = "availability", "Availability"
    PERFORMANCE = "performance", "Performance"
    SECURITY = "security", "Security"
    COMPLIANCE = "compliance", "Compliance"
    BUSINESS = "business", "Business"


class RuleGroup(models.Model):
    """A Prometheus rule group: rules evaluated together at one interval."""

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    name = models.CharField(max_length=200, unique=True)
    interval = models.CharField(max_length=20, default="1m")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class AlertRule(models.Model):
    """An alerting rule or a recording rule, as the tenant wrote it (unscoped PromQL)."""

    class Kind(models.TextChoices):
        ALERT = "alert", "Alerting rule"
        RECORD = "record", "Recording rule"

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    group = models.ForeignKey(RuleGroup, on_delete=models.PROTECT, related_name="rules")
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.ALERT)
    # Alert name, or for a recording rule the name of the series it records.
    name = models.CharField(max_length=200)
    expr = models.TextField()
    for_duration = models.CharField(max_length=20, blank=True, default="")
    keep_firing_for = models.CharField(max_length=20, blank=True, default="")
    severity = models.CharField(max_length=2, choices=Severity.choices, default=Severity.P2)
    category = models.CharField(
        max_length=20, choices=Category.choices, default=Category.AVAILABILITY
    )
    labels = models.JSONField(default=dict, blank=True)
    annotations = models.JSONField(default=dict, blank=True)
    enabled = models.BooleanField(default=True)
    position = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["group__name", "position", "name"]
        constraints = [
            models.UniqueConstraint(fields=["group", "name"], name="alertrule_unique_in_group")
        ]

    def __str__(self) -> str:
        return self.name


class Receiver(models.Model):
    """Somewhere notifications go. The secret part (URL, key, phone number, password) is
    encrypted at rest and never rendered back in full."""

    class Kind(models.TextChoices):
        SLACK = "slack", "Slack"
        MSTEAMS = "msteams", "Microsoft Teams"
        EMAIL = "email", "E-mail"
        SMS = "sms", "SMS"
        PAGERDUTY = "pagerduty", "PagerDuty"
        WEBHOOK = "webhook", "Webhook"

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    # Non-secret settings by kind (Slack channel, e-mail address, ...).
    settings = models.JSONField(default=dict, blank=True)
    # Empty (NULL) until configured: a receiver without its secret sends nothing.
    secret = EncryptedTextField(blank=True, null=True)
    # The last characters of the secret, to recognise it without revealing it.
    secret_hint = models.CharField(max_length=12, blank=True, default="")
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_kind_display()})"


class MuteTiming(models.Model):
    """A named maintenance window (Alertmanager time intervals) during which a route is muted."""

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    name = models.CharField(max_length=100, unique=True)
    # Alertmanager `time_intervals` entries: weekdays, times, days_of_month, months, years.
    intervals = models.JSONField(default=list)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class NotificationPolicy(models.Model):
    """Who is told about alerts of one severity, and how often."""

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    severity = models.CharField(max_length=2, choices=Severity.choices, unique=True)
    receivers = models.ManyToManyField(Receiver, blank=True, related_name="policies")
    group_by = models.JSONField(default=list, blank=True)
    group_wait = models.CharField(max_length=20, default="30s")
    group_interval = models.CharField(max_length=20, default="5m")
    repeat_interval = models.CharField(max_length=20, default="4h")
    mute_timings = models.ManyToManyField(MuteTiming, blank=True, related_name="policies")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["severity"]

    def __str__(self) -> str:
        return f"Policy {self.get_severity_display()}"


class Silence(models.Model):
    """A silence the portal asked Alertmanager for."""

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    # [{"name": ..., "value": ..., "isRegex": bool, "isEqual": bool}] as Alertmanager's API v2.
    matchers = models.JSONField()
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    comment = models.TextField()
    created_by = models.CharField(max_length=254)
    expired_at = models.DateTimeField(null=True, blank=True)
    # Alertmanager's id once applied; empty while pending.
    alertmanager_id = models.CharField(max_length=64, blank=True, default="")
    # Whether Alertmanager has what this row says (created, or expired once expired here).
    synced = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-starts_at"]

    def __str__(self) -> str:
        return self.comment[:80]


def default_ack_targets() -> dict:
    return {"P0": 5, "P1": 15, "P2": 240, "P3": 1440}


class AlertingSettings(models.Model):
    """One row: the tenant's alert intake credentials (the webhook Alertmanager calls) and how
    soon each severity's incidents should be acknowledged (minutes)."""

    webhook_secret = EncryptedTextField()
    rotated_at = models.DateTimeField(auto_now=True)
    ack_targets = models.JSONField(default=default_ack_targets)
    digest_sent_until = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return "Alert intake credentials"


class SyncState(models.Model):
    """Where one backend stands against what the portal holds for this tenant."""

    class Target(models.TextChoices):
        PROMETHEUS_RULES = "prometheus_rules", "Prometheus rules"
        ALERTMANAGER = "alertmanager", "Alertmanager route and receivers"
        SILENCES = "silences", "Alertmanager silences"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SYNCED = "synced", "Synced"
        FAILED = "failed", "Failed"

    target = models.CharField(max_length=30, choices=Target.choices, unique=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    desired_hash = models.CharField(max_length=64, blank=True, default="")
    applied_hash = models.CharField(max_length=64, blank=True, default="")
    # When the portal's desired state last changed; a sync that started before it is stale.
    changed_at = models.DateTimeField(null=True, blank=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True, default="")
    attempts = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.get_target_display()}: {self.get_status_display()}"


class NotificationLog(models.Model):
    """Every notification the portal sent or relayed, with the provider's answer."""

    class Outcome(models.TextChoices):
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    receiver = models.ForeignKey(
        Receiver, null=True, blank=True, on_delete=models.SET_NULL, related_name="log"
    )
    receiver_name = models.CharField(max_length=100)
    kind = models.CharField(max_length=20, choices=Receiver.Kind.choices)
    # "test" for a test notification, else the alert group key Alertmanager sent.
    reason = models.CharField(max_length=300)
    alert_status = models.CharField(max_length=20, blank=True, default="")
    outcome = models.CharField(max_length=10, choices=Outcome.choices)
    detail = models.TextField(blank=True, default="")
    sent_at = models.DateTimeField(auto_now_add=True)
    # The incidents a relayed notification or a digest was about.
    incidents = models.ManyToManyField("Incident", blank=True, related_name="notifications")

    class Meta:
        ordering = ["-sent_at"]
        indexes = [models.Index(fields=["-sent_at"])]

    def __str__(self) -> str:
        return f"{self.receiver_name}: {self.outcome}"


class Incident(models.Model):
    """One alert occurrence people work: keyed by Alertmanager's fingerprint and `startsAt`.

    `alert_state` is what Alertmanager last said about the alert; `status` is where people stand
    with it. The alert clearing resolves an open incident; a person can resolve it earlier, or
    reopen it. Incidents are never deleted: their timeline is the record.
    """

    class Status(models.TextChoices):
        TRIGGERED = "triggered", "Triggered"
        ACKNOWLEDGED = "acknowledged", "Acknowledged"
        RESOLVED = "resolved", "Resolved"

    class AlertState(models.TextChoices):
        FIRING = "firing", "Firing"
        RESOLVED = "resolved", "Resolved"

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    fingerprint = models.CharField(max_length=64)
    started_at = models.DateTimeField()
    alertname = models.CharField(max_length=200)
    severity = models.CharField(max_length=2, choices=Severity.choices, default=Severity.P2)
    category = models.CharField(
        max_length=20, choices=Category.choices, default=Category.AVAILABILITY
    )
    # The `service` label, else `job`: what the filters and "related incidents" group by.
    service = models.CharField(max_length=200, blank=True, default="")
    summary = models.CharField(max_length=500, blank=True, default="")
    labels = models.JSONField(default=dict)
    annotations = models.JSONField(default=dict, blank=True)
    generator_url = models.CharField(max_length=2000, blank=True, default="")
    rule = models.ForeignKey(
        AlertRule, null=True, blank=True, on_delete=models.SET_NULL, related_name="incidents"
    )
    alert_state = models.CharField(
        max_length=10, choices=AlertState.choices, default=AlertState.FIRING
    )
    ended_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.TRIGGERED)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.CharField(max_length=254, blank=True, default="")
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.CharField(max_length=254, blank=True, default="")
    # A member of the tenant (users live in the shared schema: kept by id and e-mail, no FK).
    assignee_id = models.IntegerField(null=True, blank=True)
    assignee_email = models.CharField(max_length=254, blank=True, default="")
    # Personal-data breach (GDPR art. 33): the 72-hour clock runs from when it was flagged.
    breach_flagged_at = models.DateTimeField(null=True, blank=True)
    breach_flagged_by = models.CharField(max_length=254, blank=True, default="")
    authority_notified_at = models.DateTimeField(null=True, blank=True)
    # The hash of the last timeline event: the next one chains to it.
    timeline_head = models.CharField(max_length=64, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-started_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["fingerprint", "started_at"], name="incident_alert_occurrence"
            )
        ]
        indexes = [
            models.Index(fields=["-started_at"]),
            models.Index(fields=["status", "severity"]),
            models.Index(fields=["alertname", "-started_at"]),
            models.Index(fields=["service", "-started_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.severity} {self.alertname}"

    @property
    def is_security(self) -> bool:
        return self.category == Category.SECURITY

    @property
    def is_open(self) -> bool:
        return self.status != self.Status.RESOLVED


class IncidentEvent(models.Model):
    """One entry of an incident's timeline. Append-only: a database trigger refuses UPDATE and
    DELETE, and each entry carries the hash of the one before it (chain of custody)."""

    class Kind(models.TextChoices):
        FIRED = "fired", "Fired"
        ROUTED = "routed", "Routed"
        NOTIFIED = "notified", "Notified"
        ACKNOWLEDGED = "acknowledged", "Acknowledged"
        ASSIGNED = "assigned", "Assigned"
        NOTE = "note", "Note"
        SILENCED = "silenced", "Silenced"
        ALERT_RESOLVED = "alert_resolved", "Alert cleared"
        RESOLVED = "resolved", "Resolved"
        REOPENED = "reopened", "Reopened"
        BREACH_FLAGGED = "breach_flagged", "Flagged as a personal-data breach"
        AUTHORITY_NOTIFIED = "authority_notified", "Supervisory authority notified"

    incident = models.ForeignKey(Incident, on_delete=models.PROTECT, related_name="events")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    at = models.DateTimeField()
    actor = models.CharField(max_length=254)
    text = models.TextField(blank=True, default="")
    detail = models.JSONField(default=dict, blank=True)
    previous_hash = models.CharField(max_length=64, blank=True, default="")
    hash = models.CharField(max_length=64)

    class Meta:
        ordering = ["at", "id"]
        indexes = [models.Index(fields=["incident", "at"])]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} by {self.actor}"
