"""PortalTask: the base of every Celery task (the Celery app's `task_cls`).

- A task runs in the schema of the tenant that sent it (tenant-schemas-celery). One sent from no
  tenant would silently run in `public`, so it is refused unless the task says `platform_wide`.
- Only transient errors are retried, a bounded number of times, with exponential backoff and
  jitter; any other error fails the task at once (Celery logs it with its traceback).
- Results are not stored (`task_ignore_result`); a task whose caller reads its result says
  `ignore_result=False`.
- `routine` tasks (heartbeats, periodic refreshes) log their receipt and success at debug level.
"""

from __future__ import annotations

import functools
import logging
import random
import smtplib
from typing import Any

from celery.exceptions import Ignore, Reject, Retry
from django.db import InterfaceError, OperationalError, connection
from django_tenants.utils import get_public_schema_name
from kombu.exceptions import OperationalError as KombuOperationalError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from tenant_schemas_celery.task import TenantTask

from portal.backends.base import BackendError

logger = logging.getLogger(__name__)

# Errors that say "not now" rather than "never": the same call may succeed later.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    OSError,  # includes ConnectionError, TimeoutError and smtplib.SMTPException
    BackendError,  # unless permanent, see PortalTask.is_transient
    OperationalError,
    InterfaceError,
    RedisConnectionError,
    RedisTimeoutError,
)

# What sending a task raises when the broker (Redis) cannot be reached: callers that queue work
# after a commit catch these and leave the work to a reconciler, or do it themselves.
QUEUE_ERRORS: tuple[type[BaseException], ...] = (KombuOperationalError, RedisError, OSError)


def queue(task, *args: Any, what: str, **kwargs: Any) -> bool:
    """`task.delay(*args, **kwargs)`; False (and a warning naming `what`) if the broker cannot
    be reached. The caller decides what then keeps the work: a reconciler, doing it now, or a
    refusal its sender retries."""
    try:
        task.delay(*args, **kwargs)
    except QUEUE_ERRORS as exc:
        logger.warning("%s not queued, the broker is unreachable (%s)", what, exc)
        return False
    return True


# OSErrors about files say "never" until someone fixes the file system: retrying cannot help.
PERMANENT_OS_ERRORS: tuple[type[OSError], ...] = (
    FileNotFoundError,
    FileExistsError,
    PermissionError,
    IsADirectoryError,
    NotADirectoryError,
)


class TenantRequired(RuntimeError):
    """A tenant task was sent from no tenant's context, so it would run in the public schema."""


def backoff_seconds(retries: int, *, base: float, cap: float) -> float:
    """Delay before retry number `retries + 1`: doubling from `base`, at most `cap`, jittered.

    Half the delay is fixed and half random, so many tasks failing together spread out but none
    comes back at once.
    """
    ceiling = min(cap, base * (2**retries))
    return ceiling / 2 + random.uniform(0, ceiling / 2)  # noqa: S311 (jitter, not a secret)


class PortalTask(TenantTask):
    """Base task: tenant required unless platform-wide, transient-only bounded retries."""

    abstract = True
    platform_wide = False
    routine = False
    transient: tuple[type[BaseException], ...] = TRANSIENT_ERRORS
    max_retries = 5
    retry_backoff_base = 2.0
    retry_backoff_cap = 600.0

    def __init__(self) -> None:
        super().__init__()
        # Celery builds one subclass per task function with `run` set to it; wrap it once, here,
        # so the retry policy applies to every task, eager or in a worker.
        run = self.run
        if getattr(run, "_portal_retries", False) or self.__class__.run is PortalTask.run:
            return

        @functools.wraps(run)
        def run_with_retries(*args: Any, **kwargs: Any) -> Any:
            try:
                return run(*args, **kwargs)
            except (Retry, Ignore, Reject):
                raise
            except Exception as exc:
                if not self.is_transient(exc):
                    raise
                # Past max_retries, retry() re-raises `exc`: the task fails with the real error.
                countdown = self.retry_delay(self.request.retries)
                raise self.retry(exc=exc, countdown=countdown) from exc

        run_with_retries._portal_retries = True  # type: ignore[attr-defined]
        self.run = run_with_retries

    def is_transient(self, exc: BaseException) -> bool:
        """Whether retrying can help: the error says "not now", not "never"."""
        if isinstance(exc, BackendError):
            return not exc.permanent
        if isinstance(exc, smtplib.SMTPRecipientsRefused):
            return False  # every recipient was refused: the address, not the server, is wrong
        if isinstance(exc, smtplib.SMTPResponseException):
            return exc.smtp_code < 500  # 4xx: try again later; 5xx: the server said no
        if isinstance(exc, PERMANENT_OS_ERRORS):
            return False
        return isinstance(exc, self.transient)

    def retry_delay(self, retries: int) -> float:
        return backoff_seconds(retries, base=self.retry_backoff_base, cap=self.retry_backoff_cap)

    def before_start(self, task_id: str, args: tuple, kwargs: dict) -> None:
        """Refuse to run a tenant task in the public schema (it was sent from no tenant)."""
        if not self.platform_wide and connection.schema_name == get_public_schema_name():
            raise TenantRequired(
                f"{self.name} must be sent from a tenant's context; it was sent from none, "
                "so it would run in the public schema"
            )
        super().before_start(task_id, args, kwargs)
