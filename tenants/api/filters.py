"""Query-string filters of list endpoints: validated by the page's own filter form, a bad one is
a 400 naming it, and the schema states the same rules (so the fuzzer can hold the code to them)."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from drf_spectacular.utils import OpenApiParameter

from tenants.api.schema import TRIMMED, trimmed_text_pattern
from tenants.audit_filters import FIRST_DAY, LAST_DAY, TEXT_MAX, AuditFilterForm

# C0 and C1 controls, NUL included. The form also refuses format characters (Cf), which a
# pattern cannot list portably; those refusals are 400s like any other.
_CONTROLS = "\\x00-\\x1f\\x7f-\\x9f"
_TEXT_FILTERS = ("action", "actor", "text")
# Lower-cased before it is checked; the Kelvin sign is the one letter outside A-Z that lowers
# into a-z.
_ACTION = f"^[{TRIMMED}]*[A-Za-z0-9_.\\u212a]*[{TRIMMED}]*$"


def audit_event_filters(request) -> dict[str, Any]:
    """`events_for` keyword arguments from the query string; ValidationError names a bad one."""
    params = request.query_params
    sent = {name: params[name] for name in AuditFilterForm.FILTERS if name in params}
    # The form trims before it counts; the schema's limit is on the text as sent.
    too_long = {
        name: [f"Use at most {TEXT_MAX} characters (this has {len(value)})."]
        for name, value in sent.items()
        if name in _TEXT_FILTERS and len(value) > TEXT_MAX
    }
    if too_long:
        raise ValidationError(too_long)
    return AuditFilterForm(sent).validated_filters()


def _text(name: str, description: str, pattern: str) -> OpenApiParameter:
    schema = {"type": "string", "maxLength": TEXT_MAX, "pattern": pattern}
    return OpenApiParameter(name, schema, description=description)


def _day(name: str, description: str) -> OpenApiParameter:
    # Empty means "not given", as a page's empty date input sends it.
    schema = {"oneOf": [{"type": "string", "format": "date"}, {"type": "string", "maxLength": 0}]}
    return OpenApiParameter(
        name, schema, description=f"{description} ({FIRST_DAY} to {LAST_DAY}); empty: none."
    )


AUDIT_EVENT_PARAMETERS = [
    _text("action", "An action or its start, e.g. `token.` for every token event.", _ACTION),
    _text(
        "actor",
        "Part of the name of the person, token or system; no control characters.",
        trimmed_text_pattern(_CONTROLS, required=False),
    ),
    _text(
        "text",
        "Part of the object's description; no control characters.",
        trimmed_text_pattern(_CONTROLS, required=False),
    ),
    _day("date_from", "First day, in UTC"),
    _day("date_to", "Last day, in UTC, on or after `date_from`"),
]
