"""Tenant lifecycle hooks: what domain apps subscribe to, without `tenants` importing them.

Each hook is sent once the change that caused it has committed (never for a rolled-back change),
by the service that made the change. Receivers connect in their app's `AppConfig.ready()`:

    lifecycle.tenant_provisioned.connect(create_default_dashboards)

Receivers of `tenant_provisioned` run inside the new tenant's schema. A receiver that fails is
logged and does not stop the others: the change itself is already committed.
"""

from __future__ import annotations

import logging

from django.db import transaction
from django.dispatch import Signal
from django_tenants.utils import tenant_context

logger = logging.getLogger(__name__)

# sender=Tenant class; kwargs: tenant
tenant_provisioned = Signal()
# sender=Tenant class; kwargs: tenant
tenant_deactivated = Signal()
# sender=Membership class; kwargs: tenant, user
member_removed = Signal()
# sender=Membership class; kwargs: tenant, user, old_role, new_role
role_changed = Signal()
# sender=User class; kwargs: user (deactivated: can no longer sign in anywhere)
user_deactivated = Signal()
# sender=Tenant class; kwargs: tenant (members now need a session verified with a second factor)
two_factor_required = Signal()
# sender=User class; kwargs: user (their authenticator app is gone: no session of theirs is
# verified any more)
second_factor_removed = Signal()


def send_on_commit(hook: Signal, sender, *, tenant=None, **kwargs) -> None:
    """Send `hook` after the current transaction commits (at once outside a transaction)."""

    def send() -> None:
        if tenant is not None and hook is tenant_provisioned:
            with tenant_context(tenant):
                results = hook.send_robust(sender, tenant=tenant, **kwargs)
        else:
            results = hook.send_robust(sender, tenant=tenant, **kwargs)
        for receiver, result in results:
            if isinstance(result, Exception):
                logger.error(
                    "lifecycle receiver %r failed",
                    receiver,
                    exc_info=(type(result), result, result.__traceback__),
                )

    transaction.on_commit(send)
