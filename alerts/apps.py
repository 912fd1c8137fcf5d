"""The alerting app; on the tenant lifecycle: defaults when created, clean-up when closed."""

from __future__ import annotations

import logging

from django.apps import AppConfig

logger = logging.getLogger(__name__)


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
    from portal.tasks import QUEUE_ERRORS

    try:
        tasks.sync_remove_tenant_rules.delay(tenant.schema_name)
        tasks.sync_alertmanager_platform.delay()
    except QUEUE_ERRORS as exc:
        logger.warning("could not queue the clean-up of %s (%s)", tenant.schema_name, exc)


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
