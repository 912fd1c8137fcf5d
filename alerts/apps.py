"""The alerting app; on the tenant lifecycle: defaults when created, clean-up when closed."""

from __future__ import annotations

from django.apps import AppConfig


def create_alerting_defaults(sender, *, tenant, **kwargs) -> None:
    """Receiver of `tenant_provisioned` (runs in the new tenant's schema): intake credentials and
    the seed's default notification policy."""
    from alerts.services import ensure_alerting_defaults
    from tenants import audit

    ensure_alerting_defaults(actor=audit.Actor.system("alerting defaults"))


def withdraw_tenant_alerting(sender, *, tenant, **kwargs) -> None:
    """Receiver of `tenant_deactivated`: its rules stop being evaluated and its route goes.

    Done in Celery (a reload may wait on a backend); if the queue is down, the reconciler removes
    rule files of tenants that are no longer active.
    """
    from alerts import tasks
    from portal.tasks import queue

    what = f"the alerting clean-up of {tenant.schema_name}"
    queue(tasks.sync_remove_tenant_rules, tenant.schema_name, what=what)
    queue(tasks.sync_alertmanager_platform, what=what)


class AlertsConfig(AppConfig):
    name = "alerts"
    verbose_name = "Alerting and incidents"

    def ready(self) -> None:
        from tenants import lifecycle

        lifecycle.tenant_provisioned.connect(
            create_alerting_defaults, dispatch_uid="alerts.create_alerting_defaults"
        )
        lifecycle.tenant_deactivated.connect(
            withdraw_tenant_alerting, dispatch_uid="alerts.withdraw_tenant_alerting"
        )
