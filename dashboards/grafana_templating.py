"""Grafana's template variables replaced by fixed values, so a Grafana query becomes a panel query.

A portal panel has no variables, so each reference gets a value once, at import:

- Grafana's own `$__interval`, `$__rate_interval`, `$__range`... become fixed durations
  (`BUILTIN_VALUES`); `$__from`, `$__to` and the like have no counterpart and make the query
  unusable.
- An interval variable becomes its saved duration.
- A query variable's values come from the source Grafana's data, so in a label matcher it
  matches every value (`label=~".*"`); elsewhere it takes the value saved with the dashboard.
- Custom, constant and text box variables take the value saved with the dashboard; several
  values (or "All") become a regular expression of them.

A matcher whose variable stands for several values turns into a regular-expression matcher
(`=` to `=~`, `!=` to `!~`) and the literal text around the variable is escaped so it still
matches only itself. Names Grafana does not know are left as they are (so `"$1"` of
`label_replace` stays `"$1"`), as Grafana leaves them. Each replacement is remembered for the
import report (`Templating.notes`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# What Grafana's own variables come to for a day's range (the portal draws 24 h by default)
# at panel width, with a 15 s scrape interval.
BUILTIN_VALUES = {
    "__interval": "1m",
    "__rate_interval": "5m",
    "__interval_ms": "60000",
    "__range": "1d",
    "__range_s": "86400",
    "__range_ms": "86400000",
}
_BUILTIN_SUBJECT = {
    "__range": "$__range (the page's range is not passed into PromQL)",
}

_DURATION = re.compile(r"[0-9]+(?:ms|s|m|h|d|w|y)")
# Grafana's syntaxes: $name, ${name}, ${name:format}, [[name]], [[name:format]].
_REFERENCE = re.compile(
    r"\$(?P<plain>\w+)|\$\{(?P<braced>\w+)(?::[^}]*)?\}|\[\[(?P<legacy>\w+)(?::[^\]]*)?\]\]"
)
# A label matcher just before a string: `name op ` (the string starts right after).
_MATCHER_BEFORE = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*$")
# How far back from a string its matcher may start: a label name and the operator around it.
_MATCHER_TAIL = 512
# What a variable may put into PromQL outside a string: names, numbers, durations, lists.
_CODE_VALUE = re.compile(r"[\w:.,\- ]*")
_REGEX_SPECIAL = frozenset(".^$|?*+()[]{}")


class Unusable(Exception):
    """This query cannot come over; the message is the reason."""


@dataclass
class Variable:
    name: str
    kind: str  # query, custom, interval, constant, textbox, datasource, adhoc...
    values: list[str]  # the values saved with the dashboard; empty for "All" or none
    all_value: str = ""  # the variable's own "All" value (often ".*"), if it has one
    options: list[str] = field(default_factory=list)
    used_as: set[str] = field(default_factory=set)  # how it was replaced, for the report


@dataclass
class Templating:
    """The dashboard's variables, and what was replaced by what (for the report)."""

    variables: dict[str, Variable] = field(default_factory=dict)
    builtins: set[str] = field(default_factory=set)
    # Replacements made in the query being read; kept only if that query comes over.
    pending: list[tuple[str, str]] = field(default_factory=list)

    def builtin(self, name: str) -> str:
        self.pending.append((name, ""))
        return BUILTIN_VALUES[name]

    def used(self, variable: Variable, how: str) -> None:
        self.pending.append((variable.name, how))

    def begin(self) -> None:
        self.pending.clear()

    def keep(self) -> None:
        for name, how in self.pending:
            if how:
                self.variables[name].used_as.add(how)
            else:
                self.builtins.add(name)
        self.pending.clear()

    def notes(self) -> list[str]:
        found = [
            f"{_BUILTIN_SUBJECT.get(name, '$' + name)} was fixed at {BUILTIN_VALUES[name]}"
            for name in sorted(self.builtins)
        ]
        for variable in self.variables.values():
            if variable.used_as:
                ways = "; ".join(sorted(variable.used_as))
                found.append(f"${variable.name} ({variable.kind} variable) became {ways}")
        return found


# --- reading the variables ---------------------------------------------------------------------


def read_templating(variables: list, inputs: object) -> Templating:
    """The variables of `templating.list`, and the constants a shared export asks for."""
    found = _input_constants(inputs)
    for item in variables:
        if isinstance(item, dict) and isinstance(item.get("name"), str):
            found[item["name"]] = _variable(item)
    return Templating(variables=found)


def _text_values(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [item for item in value if isinstance(item, str)]
    return []


def _variable(item: dict) -> Variable:
    kind = item.get("type") if isinstance(item.get("type"), str) else "query"
    current = item.get("current") if isinstance(item.get("current"), dict) else {}
    values = _text_values(current.get("value"))
    options = [
        option["value"]
        for option in item.get("options") or []
        if isinstance(option, dict) and isinstance(option.get("value"), str)
    ]
    query = item.get("query")
    if kind == "custom" and not options and isinstance(query, str):
        # "a,b,c", or "label : value" pairs (Grafana's custom variable syntax)
        options = [part.split(" : ")[-1].strip() for part in query.split(",") if part.strip()]
    if kind == "constant" and isinstance(query, str):
        values = [query]
    if kind == "textbox" and not values and isinstance(query, str):
        values = [query]
    if kind == "interval":
        values = [_interval_value(item, values, options)]
    if kind == "datasource":
        # Its query names the plugin type it picks from ("prometheus", "loki"...).
        options = [query.lower()] if isinstance(query, str) and query else ["prometheus"]
    options = [option for option in options if option != "$__all"]
    everything = any(value in ("$__all", "All") for value in values)
    values = [] if everything else [value for value in values if value]
    if kind == "custom" and not values and not everything and options:
        values = [options[0]]
    return Variable(
        name=item["name"],
        kind=kind,
        values=values,
        all_value=item.get("allValue") if isinstance(item.get("allValue"), str) else "",
        options=options,
    )


def _interval_value(item: dict, values: list[str], options: list[str]) -> str:
    """A fixed duration for an interval variable: the saved one, else its first option."""
    for candidate in [*values, *options]:
        if _DURATION.fullmatch(candidate):
            return candidate
    minimum = item.get("auto_min")
    if isinstance(minimum, str) and _DURATION.fullmatch(minimum):
        return minimum
    return "1m"


def _input_constants(raw: object) -> dict[str, Variable]:
    """Constants a shared export asks for on import (`${VAR_...}`), with their defaults."""
    found = {}
    for item in raw if isinstance(raw, list) else []:
        if (
            isinstance(item, dict)
            and item.get("type") == "constant"
            and isinstance(item.get("name"), str)
            and isinstance(item.get("value"), str)
        ):
            found[item["name"]] = Variable(item["name"], "constant", [item["value"]])
    return found


# --- replacing ---------------------------------------------------------------------------------


def _name(match: re.Match) -> str:
    return match.group("plain") or match.group("braced") or match.group("legacy")


def _regex_escape(text: str) -> str:
    return "".join("\\" + ch if ch in _REGEX_SPECIAL else ch for ch in text)


def _quoted(text: str, quote: str) -> str:
    """`text` as it is written inside a PromQL string delimited by `quote`."""
    if quote == "`":
        return text
    return text.replace("\\", "\\\\").replace(quote, "\\" + quote)


def _regex_escape_written(written: str, quote: str) -> str:
    """Escape regular-expression characters in text as written inside a PromQL string."""
    backslash = "\\" if quote == "`" else "\\\\"
    out, i = [], 0
    while i < len(written):
        ch = written[i]
        if ch == "\\" and quote != "`" and i + 1 < len(written):
            out.append(written[i : i + 2])  # an escape sequence stays what it was
            i += 2
            continue
        out.append(backslash + ch if ch in _REGEX_SPECIAL else ch)
        i += 1
    return "".join(out)


def resolve_expression(expr: str, templating: Templating) -> str:
    """`expr` with every template variable replaced (see the module's description)."""
    out: list[str] = []
    code_start = i = 0
    n = len(expr)
    while i < n:
        ch = expr[i]
        if ch == "#":  # a comment runs to the end of the line and stays as it is
            end = expr.find("\n", i)
            end = n if end < 0 else end
            out += [_resolve_code(expr[code_start:i], templating), expr[i:end]]
            i = code_start = end
            continue
        if ch not in "\"'`":
            i += 1
            continue
        end = i + 1
        while end < n and expr[end] != ch:
            end += 2 if expr[end] == "\\" and ch != "`" else 1
        if end >= n:
            raise Unusable("PromQL: a string is not closed")
        code, body = expr[code_start:i], expr[i + 1 : end]
        # Only the end of the code can hold the matcher: searching all of a long run of name
        # characters from every start would take quadratic time.
        tail_start = max(0, len(code) - _MATCHER_TAIL)
        matcher = _MATCHER_BEFORE.search(code, tail_start)
        if matcher:
            op = matcher.group(2)
            new_op, body = _resolve_matcher(matcher.group(1), op, ch, body, templating)
            code = code[: matcher.start(2)] + new_op + code[matcher.end(2) :]
        else:
            body = _resolve_plain_string(body, ch, templating)
        out += [_resolve_code(code, templating), ch + body + ch]
        i = code_start = end + 1
    out.append(_resolve_code(expr[code_start:], templating))
    return "".join(out)


def _resolve_matcher(
    label: str, op: str, quote: str, body: str, templating: Templating
) -> tuple[str, str]:
    """A label matcher's operator and string (as written) with its variables replaced."""
    pieces: list[tuple[str, str]] = []  # ("written", text) or ("value" | "regex", logical)
    regex_needed = False
    position = 0
    for match in _REFERENCE.finditer(body):
        name = _name(match)
        variable = templating.variables.get(name)
        if variable is None and name not in BUILTIN_VALUES:
            continue  # Grafana leaves names it does not know ("$1") alone
        pieces.append(("written", body[position : match.start()]))
        position = match.end()
        if variable is None:
            pieces.append(("value", templating.builtin(name)))
        elif variable.kind == "query" or not variable.values:
            every = ".*"
            if variable.kind != "query" and variable.all_value:
                every = variable.all_value
            elif variable.kind != "query" and variable.options:
                every = "(" + "|".join(_regex_escape(o) for o in variable.options) + ")"
            pieces.append(("regex", every))
            regex_needed = True
            templating.used(variable, f'every value ({label}=~"{every}") in label matchers')
        elif len(variable.values) > 1:
            alternatives = "(" + "|".join(_regex_escape(v) for v in variable.values) + ")"
            pieces.append(("regex", alternatives))
            regex_needed = True
            templating.used(variable, f"the values saved with the dashboard ({alternatives})")
        else:
            value = variable.values[0]
            # A single value goes in as it is, as Grafana puts it (regular expression or not).
            pieces.append(("regex" if op in ("=~", "!~") else "value", value))
            templating.used(variable, f"the value saved with the dashboard ({value})")
    if not pieces:
        return op, body
    pieces.append(("written", body[position:]))
    converted = regex_needed and op in ("=", "!=")
    if converted:
        op = "=~" if op == "=" else "!~"
    out = []
    for kind, text in pieces:
        if kind == "written":
            out.append(_regex_escape_written(text, quote) if converted else text)
        elif kind == "value" and converted:
            out.append(_quoted(_regex_escape(text), quote))
        else:
            out.append(_quoted(text, quote))
    return op, "".join(out)


def _resolve_code(text: str, templating: Templating) -> str:
    """Variables outside strings: durations, numbers, label lists; else Unusable."""

    def replace(match: re.Match) -> str:
        name = _name(match)
        if name in BUILTIN_VALUES:
            return templating.builtin(name)
        if name.startswith("__"):
            raise Unusable(f"it uses ${name}, which has no counterpart here")
        variable = templating.variables.get(name)
        if variable is None:
            return match.group(0)  # as Grafana leaves it; the parser judges what it makes
        if len(variable.values) != 1:
            raise Unusable(
                f"${name} stands for several values outside a label matcher; "
                "there is no single value to put there"
            )
        value = variable.values[0]
        if not _CODE_VALUE.fullmatch(value):
            raise Unusable(f"the value of ${name} cannot stand outside a string")
        if variable.kind == "interval":
            templating.used(variable, f"fixed at {value}")
        else:
            templating.used(variable, f"the value saved with the dashboard ({value})")
        return value

    return _REFERENCE.sub(replace, text)


def _resolve_plain_string(body: str, quote: str, templating: Templating) -> str:
    """A string that is no matcher (an argument of label_replace...): single values only."""

    def replace(match: re.Match) -> str:
        name = _name(match)
        if name in BUILTIN_VALUES:
            return templating.builtin(name)
        variable = templating.variables.get(name)
        if variable is None or len(variable.values) != 1:
            return match.group(0)
        templating.used(variable, f"the value saved with the dashboard ({variable.values[0]})")
        return _quoted(variable.values[0], quote)

    return _REFERENCE.sub(replace, body)


def resolve_text(text: str, templating: Templating) -> str:
    """Variables in a title or legend: their saved values, or "all"."""

    def replace(match: re.Match) -> str:
        name = _name(match)
        if name in BUILTIN_VALUES:
            return BUILTIN_VALUES[name]
        variable = templating.variables.get(name)
        if variable is None:
            return match.group(0)
        if variable.kind == "query" or not variable.values:
            return "all"
        return ", ".join(variable.values)

    return _REFERENCE.sub(replace, text)


def datasource_variable(name: str, templating: Templating) -> str | None:
    """The plugin type a datasource variable (`$datasource`) selects, if `name` is one."""
    variable = templating.variables.get(name)
    if variable is None or variable.kind != "datasource" or not variable.options:
        return None
    return variable.options[0]
