"""API errors in the two documented shapes, and never a 500 for a client's mistake.

- `{"detail": "<reason>"}` for every status (401, 403, 404, 405, 415, ...), and for a 400 whose
  reason is the request as a whole (e.g. a body that is not JSON);
- `{"<field>": ["<reason>", ...], ...}` for a 400 naming fields (`non_field_errors` for rules
  across fields). Nested errors (an item of a list) are flattened into their field's list.

Django `ValidationError`s raised by services become such 400s; `ObjectDoesNotExist` raised by a
service for an id in the URL is the same 404 as any other object not found in this tenant.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.core.exceptions import ObjectDoesNotExist
from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from tenants.api.viewsets import not_found


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(_django_errors(exc))
    elif isinstance(exc, ObjectDoesNotExist):
        exc = not_found()
    response = drf_exception_handler(exc, context)
    if response is not None and isinstance(exc, exceptions.ValidationError):
        response.data = validation_body(exc.detail)
    return response


def _django_errors(exc: DjangoValidationError) -> dict[str, list[str]] | list[str]:
    if hasattr(exc, "error_dict"):
        return {field: list(messages) for field, messages in exc.message_dict.items()}
    return list(exc.messages)


def validation_body(detail: Any) -> dict[str, Any]:
    """A 400 body: field -> list of reasons, or `{"detail": reason}` for the request as a whole."""
    if isinstance(detail, Mapping):
        body = {str(field): _messages(errors) for field, errors in detail.items()}
        if set(body) == {"detail"}:
            return {"detail": " ".join(body["detail"])}
        return body
    return {"detail": " ".join(_messages(detail))}


def _messages(errors: Any, prefix: str = "") -> list[str]:
    """Every message under `errors`, nested ones prefixed with where they are (`Item 2: ...`)."""
    if isinstance(errors, Mapping):
        found: list[str] = []
        for key, value in errors.items():
            label = f"Item {key}" if isinstance(key, int) or str(key).isdigit() else str(key)
            found.extend(_messages(value, f"{prefix}{label}: "))
        return found
    if isinstance(errors, list | tuple):
        found = []
        for index, value in enumerate(errors):
            if isinstance(value, Mapping | list | tuple):
                found.extend(_messages(value, f"{prefix}Item {index}: "))
            else:
                found.append(f"{prefix}{value}")
        return found
    return [f"{prefix}{errors}"]
