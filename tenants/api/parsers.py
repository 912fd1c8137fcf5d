"""The API reads JSON only, and only text PostgreSQL can store."""

from __future__ import annotations

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser


def _has_lone_surrogate(value: object) -> bool:
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return True
        return False
    if isinstance(value, dict):
        return any(_has_lone_surrogate(k) or _has_lone_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_lone_surrogate(item) for item in value)
    return False


class StrictJSONParser(JSONParser):
    """JSON whose strings are valid Unicode: a lone surrogate escape (`\\ud800`) is a 400."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
            lone_surrogate = _has_lone_surrogate(data)
        except RecursionError:
            # Python's parser (and the walk above) recurse per level: thousands of nested
            # brackets would otherwise be a 500.
            raise ParseError("JSON parse error - nested too deeply.") from None
        if lone_surrogate:
            raise ParseError("JSON parse error - a string holds an unpaired surrogate escape.")
        return data
