"""Celery app: tenant-schemas-celery carries the sender's schema in every message header.

Every task is a `portal.tasks.PortalTask`; queues and routes are in settings (CELERY_TASK_ROUTES).
"""

import os

from celery.signals import worker_init
from tenant_schemas_celery.app import CeleryApp

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

app = CeleryApp("portal", task_cls="portal.tasks:PortalTask")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_init.connect
def _refuse_unsafe_start(**kwargs) -> None:
    from portal.checks import refuse_unsafe_production_start

    refuse_unsafe_production_start()
