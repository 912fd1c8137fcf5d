"""The OpenAPI schema says exactly what the code accepts and every status it answers.

- `TenantAutoSchema` states the text rules the plain mapping leaves out, as a `pattern`: those of
  the shared form's field when the serializer validates through one (`form_class`: trimmed, no
  control characters), else DRF's (no NUL; required text keeps a character once trimmed).
- `document_error_responses` (a postprocessing hook) adds the error statuses of each operation,
  in the shapes `tenants.api.errors` produces: 401/403 on every operation, 404 where the path
  names an object, 400 where a body or query parameters can be refused.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.openapi import AutoSchema
from rest_framework import serializers

from tenants.forms import TextField

# What Python's str.strip() removes (wider than ECMA's \s: it also trims \x1c-\x1f and \x85).
TRIMMED = (
    "\\t\\n\\x0b\\x0c\\r\\x1c-\\x1f \\x85\\xa0"
    "\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000"
)
# What `tenants.forms.check_text` refuses inside text: controls (Cc), line and paragraph
# separators, bidirectional controls; multi-line text keeps tabs and line ends.
_BIDI = "\\u061c\\u200e\\u200f\\u202a-\\u202e\\u2066-\\u2069"
_REFUSED_ONE_LINE = "\\x00-\\x1f\\x7f-\\x9f\\u2028\\u2029" + _BIDI
_REFUSED_MULTILINE = "\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f-\\x9f\\u2028\\u2029" + _BIDI


def trimmed_text_pattern(refused: str, *, required: bool) -> str:
    """Text refused if it holds a `refused` character once trimmed (and, if required, empty)."""
    edge = f"[^{refused}{TRIMMED}]"
    inner = f"[^{refused}]"
    core = f"{edge}(?:{inner}*{edge})?"
    return f"^[{TRIMMED}]*{core if required else f'(?:{core})?'}[{TRIMMED}]*$"


def text_pattern(field: serializers.CharField) -> str:
    """The pattern of what a text input accepts: the shared form's rule, else DRF's own."""
    form_class = getattr(field.parent, "form_class", None)
    form_field = form_class.base_fields.get(field.field_name) if form_class else None
    if isinstance(form_field, TextField):
        refused = _REFUSED_MULTILINE if form_field.multiline else _REFUSED_ONE_LINE
        return trimmed_text_pattern(refused, required=form_field.required)
    # DRF alone refuses NUL, and blank text (once trimmed) unless blank is allowed.
    if field.allow_blank or not field.trim_whitespace:
        return "^[^\\x00]*$"
    return trimmed_text_pattern("\\x00", required=True)


ERROR = "ErrorResponse"
VALIDATION_ERROR = "ValidationErrorResponse"
ERROR_SCHEMAS: dict[str, dict[str, Any]] = {
    ERROR: {
        "type": "object",
        "description": "Why the request was refused.",
        "properties": {"detail": {"type": "string"}},
        "required": ["detail"],
        "additionalProperties": False,
    },
    VALIDATION_ERROR: {
        "type": "object",
        "description": (
            "Each refused field with its reasons (`non_field_errors` for rules across fields), "
            "or `detail` when the request as a whole was refused (e.g. a body that is not JSON)."
        ),
        "properties": {"detail": {"type": "string"}},
        "additionalProperties": {"type": "array", "items": {"type": "string"}},
        "minProperties": 1,
    },
}
_ERROR_DESCRIPTIONS = {
    "400": "Bad input (each field named with its reason) or a refusal by the service",
    "401": "No credentials, or a token that is invalid, expired, revoked or for another tenant",
    "403": "Not allowed: not a member, or the role or token scopes lack the permission",
    "404": "No such object in this tenant (also for an id that is not a UUID)",
}
_BODY_METHODS = {"post", "put", "patch", "delete"}


class TenantAutoSchema(AutoSchema):
    """drf-spectacular's schema, with the text rules of request fields stated as patterns."""

    def _map_serializer_field(self, field, direction, bypass_extensions=False):
        schema = super()._map_serializer_field(field, direction, bypass_extensions)
        if (
            direction == "request"
            and isinstance(schema, dict)
            and isinstance(field, serializers.CharField)
            and schema.get("type") == "string"
            and "pattern" not in schema
            and "enum" not in schema
        ):
            schema["pattern"] = text_pattern(field)
        return schema


def document_error_responses(result: dict, generator, request, public) -> dict:
    """Add the error responses every operation can answer, and their two shapes."""
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas.update(ERROR_SCHEMAS)
    for path_item in result.get("paths", {}).values():
        for method, operation in path_item.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            for status in _error_statuses(method, operation):
                shape = VALIDATION_ERROR if status == "400" else ERROR
                operation["responses"].setdefault(
                    status,
                    {
                        "description": _ERROR_DESCRIPTIONS[status],
                        "content": {
                            "application/json": {
                                "schema": {"$ref": f"#/components/schemas/{shape}"}
                            }
                        },
                    },
                )
    return result


def _error_statuses(method: str, operation: dict) -> list[str]:
    locations = {parameter.get("in") for parameter in operation.get("parameters", [])}
    statuses = []
    # Services refuse some writes whatever the body (the last admin, a revoked token...).
    if method in _BODY_METHODS or "requestBody" in operation or "query" in locations:
        statuses.append("400")
    statuses += ["401", "403"]
    if "path" in locations:
        statuses.append("404")
    return statuses
