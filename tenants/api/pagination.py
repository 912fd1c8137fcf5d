"""Pagination with a ceiling: a client cannot ask for the whole table in one response.

A `limit` or `offset` that is not a whole number in range is a 400 naming it (DRF would quietly
fall back to the default), and the schema states the ranges, so what the code accepts and what
the documentation promises are the same.
"""

from __future__ import annotations

import re

from rest_framework.exceptions import ValidationError
from rest_framework.pagination import LimitOffsetPagination

# Above this an offset is surely a mistake, and PostgreSQL refuses offsets beyond bigint.
MAX_OFFSET = 10_000_000
_INTEGER = re.compile(r"-?[0-9]{1,18}")


def _whole_number(request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    value = int(raw) if _INTEGER.fullmatch(raw) else None
    if value is None or not low <= value <= high:
        raise ValidationError({name: [f"Expected a whole number from {low} to {high}."]})
    return value


class BoundedLimitOffsetPagination(LimitOffsetPagination):
    max_limit = 1000

    def get_limit(self, request) -> int:
        return _whole_number(request, self.limit_query_param, self.default_limit, 1, self.max_limit)

    def get_offset(self, request) -> int:
        return _whole_number(request, self.offset_query_param, 0, 0, MAX_OFFSET)

    def get_schema_operation_parameters(self, view) -> list[dict]:
        parameters = super().get_schema_operation_parameters(view)
        ranges = {
            self.limit_query_param: (1, self.max_limit),
            self.offset_query_param: (0, MAX_OFFSET),
        }
        for parameter in parameters:
            low, high = ranges[parameter["name"]]
            parameter["schema"] = {**parameter["schema"], "minimum": low, "maximum": high}
        return parameters
