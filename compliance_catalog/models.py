"""The framework catalog, platform-wide (public schema): read-only data loaded from data/*.yaml.

Tenants refer to controls by `code` (a stable text key), never by a foreign key into this schema,
so reloading the catalog never touches a tenant's rows.
"""

from __future__ import annotations

from django.db import models


class Framework(models.Model):
    """A standard or law the portal assesses against (ISO/IEC 27001, SOC 2, ...)."""

    code = models.SlugField(max_length=40, unique=True)
    name = models.CharField(max_length=100)
    version = models.CharField(max_length=60)
    # Revision of our data file, bumped whenever its content changes.
    revision = models.PositiveIntegerField(default=1)
    position = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["position", "code"]

    def __str__(self) -> str:
        return f"{self.name} {self.version}"


class Requirement(models.Model):
    """One clause, criterion or article of a framework, with our short title."""

    framework = models.ForeignKey(Framework, on_delete=models.CASCADE, related_name="requirements")
    ref = models.CharField(max_length=40)
    title = models.CharField(max_length=200)
    group_ref = models.CharField(max_length=40)
    group_title = models.CharField(max_length=200)
    position = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["framework", "position"]
        constraints = [
            models.UniqueConstraint(fields=["framework", "ref"], name="requirement_unique_ref")
        ]

    def __str__(self) -> str:
        return f"{self.framework.code} {self.ref} {self.title}"


class Control(models.Model):
    """A common control: assessed once per tenant, counted for every requirement it maps to."""

    code = models.CharField(max_length=20, unique=True)
    title = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    # Name of the automated check in compliance.checks; empty for an attested control.
    check_name = models.CharField(max_length=60, blank=True)
    requirements = models.ManyToManyField(Requirement, related_name="controls")
    # Controls dropped from the data file stay (tenants may hold evidence for them) but retire.
    retired = models.BooleanField(default=False)
    position = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["position", "code"]

    def __str__(self) -> str:
        return f"{self.code} {self.title}"


class CatalogLoad(models.Model):
    """One load of the data files: which content (digest) is in the tables, and when it came."""

    digest = models.CharField(max_length=64)
    revisions = models.JSONField(default=dict)
    loaded_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-loaded_at"]

    def __str__(self) -> str:
        return f"{self.loaded_at:%Y-%m-%d %H:%M} {self.digest[:12]}"
