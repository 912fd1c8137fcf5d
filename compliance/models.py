"""A tenant's compliance state (its own schema): control statuses, evidence, history, snapshots.

Controls are named by their catalog `code` (compliance_catalog.Control lives in the public
schema); no foreign key crosses schemas, so reloading the catalog never touches these rows.
"""

from __future__ import annotations

import uuid

from django.db import models


class Status(models.TextChoices):
    PASSING = "passing", "Passing"
    FAILING = "failing", "Failing"
    NOT_APPLICABLE = "not_applicable", "Not applicable"
    NOT_ASSESSED = "not_assessed", "Not assessed"


class Source(models.TextChoices):
    AUTOMATED = "automated", "Automated check"
    ATTESTATION = "attestation", "Attestation"


class ControlStatus(models.Model):
    """Where one control stands for this tenant, and who answers for it."""

    control_code = models.CharField(max_length=20, unique=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.NOT_ASSESSED)
    source = models.CharField(max_length=20, choices=Source.choices, default=Source.AUTOMATED)
    reason = models.TextField(blank=True, default="")
    # The owner is a member of the tenant (public-schema Membership) named by id and e-mail.
    owner_membership_id = models.BigIntegerField(null=True, blank=True)
    owner_email = models.EmailField(blank=True, default="")
    review_date = models.DateField(null=True, blank=True)
    # When an attestation stops counting; it then turns to not assessed.
    expires_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField()
    updated_by = models.CharField(max_length=254, blank=True, default="")

    class Meta:
        ordering = ["control_code"]
        verbose_name_plural = "control statuses"

    def __str__(self) -> str:
        return f"{self.control_code}: {self.get_status_display()}"


class StatusChange(models.Model):
    """One change of a control's status (append-only history)."""

    control_code = models.CharField(max_length=20)
    status = models.CharField(max_length=20, choices=Status.choices)
    previous_status = models.CharField(max_length=20, choices=Status.choices, blank=True)
    source = models.CharField(max_length=20, choices=Source.choices)
    reason = models.TextField(blank=True, default="")
    changed_at = models.DateTimeField()
    changed_by = models.CharField(max_length=254, blank=True, default="")

    class Meta:
        ordering = ["-changed_at", "-pk"]
        indexes = [
            models.Index(fields=["control_code", "-changed_at"], name="status_change_recent")
        ]

    def __str__(self) -> str:
        return f"{self.control_code} → {self.status} at {self.changed_at:%Y-%m-%d %H:%M}"


def evidence_upload_path(evidence: Evidence, filename: str) -> str:
    """Files live under their tenant's folder, one folder per evidence item."""
    from django.db import connection

    return f"evidence/{connection.schema_name}/{evidence.public_id}/{filename}"


class Evidence(models.Model):
    """Something that shows a control works: a file, a link, a note, or a portal record."""

    class Kind(models.TextChoices):
        FILE = "file", "File"
        LINK = "link", "Link"
        NOTE = "note", "Note"
        RECORD = "record", "Portal record"

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    control_code = models.CharField(max_length=20, db_index=True)
    kind = models.CharField(max_length=10, choices=Kind.choices)
    title = models.CharField(max_length=200)
    file = models.FileField(upload_to=evidence_upload_path, blank=True, max_length=300)
    content_type = models.CharField(max_length=100, blank=True, default="")
    size = models.PositiveIntegerField(default=0)
    url = models.URLField(blank=True, default="", max_length=2000)
    note = models.TextField(blank=True, default="")
    # A portal record: its model label and public id (a rule, a policy, a dashboard ...).
    record_type = models.CharField(max_length=100, blank=True, default="")
    record_id = models.CharField(max_length=64, blank=True, default="")
    expires_at = models.DateTimeField(null=True, blank=True)
    added_at = models.DateTimeField()
    added_by = models.CharField(max_length=254, blank=True, default="")

    class Meta:
        ordering = ["-added_at", "-pk"]
        verbose_name_plural = "evidence"

    def __str__(self) -> str:
        return f"{self.control_code}: {self.title}"


class ChainVerification(models.Model):
    """One verification of this tenant's audit chain (what reports and the audit page quote)."""

    checked_at = models.DateTimeField()
    ok = models.BooleanField()
    rows = models.BigIntegerField(default=0)
    last_seq = models.BigIntegerField(default=0)
    bad_seq = models.BigIntegerField(null=True, blank=True)
    problem = models.CharField(max_length=200, blank=True, default="")

    class Meta:
        ordering = ["-checked_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.checked_at:%Y-%m-%d %H:%M} {'verified' if self.ok else 'FAILED'}"


class ComplianceSnapshot(models.Model):
    """One framework's score on one day (the trend on the overview)."""

    framework_code = models.CharField(max_length=40)
    day = models.DateField()
    passing = models.PositiveIntegerField(default=0)
    failing = models.PositiveIntegerField(default=0)
    not_assessed = models.PositiveIntegerField(default=0)
    not_applicable = models.PositiveIntegerField(default=0)
    # passing / applicable, in percent; None when nothing applies.
    score = models.FloatField(null=True, blank=True)
    chain_ok = models.BooleanField(null=True, blank=True)
    chain_head_seq = models.BigIntegerField(null=True, blank=True)
    taken_at = models.DateTimeField()

    class Meta:
        ordering = ["framework_code", "day"]
        constraints = [
            models.UniqueConstraint(fields=["framework_code", "day"], name="snapshot_one_per_day")
        ]

    def __str__(self) -> str:
        return f"{self.framework_code} {self.day}: {self.score}"
