"""Verify the audit trail's hash chains: `manage.py verify_audit [--tenant SLUG | --platform]`."""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand, CommandError

from tenants.audit_chain import ChainCheck, chains, verify_chain
from tenants.models import Tenant
from tenants.slugs import schema_name_for


class Command(BaseCommand):
    help = (
        "Walk each audit chain (the platform's and every tenant's) and name the first row that "
        "does not verify. Exits with status 1 if any chain fails."
    )
    # Checking the trail needs only the database: it must work while other settings are broken.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser):
        which = parser.add_mutually_exclusive_group()
        which.add_argument("--tenant", metavar="SLUG", help="verify only this tenant's chain")
        which.add_argument(
            "--platform", action="store_true", help="verify only the platform's own chain"
        )

    def handle(self, *args, tenant: str | None, platform: bool, **options) -> None:
        if tenant is not None:
            selected: list[Tenant | None] = [self._tenant(tenant)]
        elif platform:
            selected = [None]
        else:
            selected = chains()
        started = time.perf_counter()
        failures = 0
        rows = 0
        for chain in selected:
            check = verify_chain(chain)
            rows += check.rows
            failures += not check.ok
            self.stdout.write(self._line(check))
        elapsed = time.perf_counter() - started
        summary = f"{len(selected)} chain(s), {rows} event(s) checked in {elapsed:.1f} s"
        if failures:
            raise CommandError(f"{failures} of {summary} failed verification")
        self.stdout.write(self.style.SUCCESS(f"all {summary}: OK"))

    def _tenant(self, slug: str) -> Tenant:
        try:
            return Tenant.objects.get(schema_name=schema_name_for(slug.strip()))
        except Tenant.DoesNotExist:
            raise CommandError(f"--tenant: no tenant has the slug {slug!r}") from None

    def _line(self, check: ChainCheck) -> str:
        if check.ok:
            head = f"head seq {check.last_seq}" if check.rows else "no events"
            return f"{check.name}: {check.rows} row(s) checked, OK ({head})"
        return self.style.ERROR(
            f"{check.name}: {check.rows} row(s) verified, FAILED at seq {check.bad_seq}: "
            f"{check.problem} ({check.detail})"
        )
