"""Celery app: tenant-schemas-celery carries the sender's schema in every message header."""

import os

from celery.signals import worker_init
from tenant_schemas_celery.app import CeleryApp

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

app = CeleryApp("portal")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_init.connect
def _refuse_unsafe_production_start(**kwargs) -> None:
    from portal.checks import refuse_unsafe_production_start

    refuse_unsafe_production_start()
