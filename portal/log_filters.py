"""Logging filters that keep the terminal of a running portal readable.

Referenced from LOGGING in the settings through `django.utils.log.CallbackFilter`.
"""

from __future__ import annotations

import logging


def client_errors_without_traceback(record: logging.LogRecord) -> bool:
    """A 4xx (a refused or unknown page) is one line; only server errors carry a traceback."""
    status = getattr(record, "status_code", None)
    if status is not None and status < 500:
        record.exc_info = None
        record.exc_text = None
    return True


def routine_tasks_at_debug(record: logging.LogRecord) -> bool:
    """Lines about `routine` tasks (received, succeeded, sent by beat) become debug lines."""
    if record.levelno != logging.INFO or not _names_a_routine_task(record.args):
        return True
    record.levelno, record.levelname = logging.DEBUG, "DEBUG"
    return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)


def _names_a_routine_task(args: object) -> bool:
    if isinstance(args, dict):
        names = [args.get("name")]
    elif isinstance(args, tuple):
        names = list(args)
    else:
        return False
    from portal.celery import app

    for name in names:
        task = app.tasks.get(name) if isinstance(name, str) else None
        if task is not None and getattr(task, "routine", False):
            return True
    return False
