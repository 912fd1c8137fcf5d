"""Asking for a sync after a save: coalesced per tenant and target, never lost.

A save marks its target pending in `SyncState` (in the same transaction), then asks for one sync
task per tenant and target after commit. While such a task is queued and not started, further
saves add nothing (a short-lived cache marker); the task clears the marker before it reads the
state, so a save during a sync always gets a sync of its own. If the queue cannot be reached, the
pending state in the database is enough: the reconciler picks it up.
"""

from __future__ import annotations

import contextlib
import logging

from django.core.cache import cache
from django.db import connection, transaction
from django_tenants.utils import schema_context
from redis.exceptions import RedisError

from portal.tasks import QUEUE_ERRORS

logger = logging.getLogger(__name__)

MARKER_SECONDS = 300


def _marker(target: str) -> str:
    # Django cache keys already carry the current schema (django_tenants.cache.make_key).
    return f"alerting-sync-queued:{target}"


def request_on_commit(targets) -> None:
    # The schema is taken now: when the callback runs (possibly nested in another tenant's or the
    # public schema's on-commit work) the connection may be elsewhere.
    targets = tuple(dict.fromkeys(targets))
    schema = connection.schema_name

    def request() -> None:
        with schema_context(schema):
            request_now(targets)

    transaction.on_commit(request)


def request_now(targets) -> None:
    from alerts import tasks

    for target in targets:
        try:
            if not cache.add(_marker(target), 1, timeout=MARKER_SECONDS):
                continue  # a sync of this target is queued already and will see this change
            tasks.task_for(target).delay()
        except QUEUE_ERRORS as exc:
            # The state stays pending in the database; the reconciler will sync it.
            logger.warning("could not queue the %s sync (%s); the reconciler will", target, exc)


def starting(target: str) -> None:
    """Called by a sync task before it reads the state: later saves queue a new task."""
    with contextlib.suppress(RedisError):
        cache.delete(_marker(target))
