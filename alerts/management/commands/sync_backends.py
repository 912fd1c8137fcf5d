"""Bring Prometheus and Alertmanager in step with the portal now, and say where each tenant is."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from django_tenants.utils import tenant_context

from alerts import sync
from alerts.models import SyncState
from tenants.fanout import active_tenants
from tenants.slugs import schema_name_for


class Command(BaseCommand):
    help = (
        "Run the sync passes synchronously (rules, Alertmanager configuration, silences) and "
        "print each tenant's state. Exits 1 if any target failed."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--tenant", metavar="SLUG", help="only this tenant (default: all)")

    def handle(self, *args, tenant: str | None = None, **options) -> None:
        tenants = list(active_tenants())
        if tenant is not None:
            # Slugs have hyphens where schema names have underscores.
            tenants = [t for t in tenants if t.schema_name == schema_name_for(tenant)]
            if not tenants:
                raise CommandError(f"No active tenant has the slug {tenant!r}.")
        for one in tenants:
            with tenant_context(one):
                sync.sync_rules(one)
                sync.sync_silences(one)
        # One file for every tenant: a pass for one tenant renders them all.
        sync.sync_alertmanager()
        failed = False
        for one in tenants:
            with tenant_context(one):
                states = {s.target: s for s in SyncState.objects.all()}
            self.stdout.write(self.style.MIGRATE_HEADING(one.schema_name))
            for target, label in SyncState.Target.choices:
                state = states.get(target)
                failed |= state is not None and state.status == SyncState.Status.FAILED
                self.stdout.write(f"  {label}: {self._describe(state)}")
        if failed:
            raise CommandError("At least one target failed; see above.", returncode=1)

    def _describe(self, state: SyncState | None) -> str:
        if state is None:
            return "never synced"
        text = state.get_status_display().lower()
        style = {
            SyncState.Status.SYNCED: self.style.SUCCESS,
            SyncState.Status.FAILED: self.style.ERROR,
        }.get(state.status, self.style.WARNING)
        if state.error:
            text += f": {state.error}"
        return style(text)
