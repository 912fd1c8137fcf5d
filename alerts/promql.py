"""PromQL a tenant writes, checked and rewritten so every selector only sees that tenant's series.

The expression is parsed with promql-parser (a real PromQL parser) and rendered back by this module
rather than by the parser's own `str()`: that one writes label values without escaping them, so a
value holding `"}` would come back as extra PromQL with selectors nobody scoped. Rendering here
quotes every string, adds `tenant="<schema>"` to every selector, and the result is parsed once more
and checked (every selector carries the tenant matcher, and rendering it again changes nothing)
before it is returned.

Naming the label `tenant` anywhere is refused rather than fixed: the portal owns that label.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import promql_parser as pp

TENANT_LABEL = "tenant"
MAX_EXPRESSION_LENGTH = 10_000
# promql-parser's time grows with the depth of the tree times its length (a chain of 300
# operators over 8 kB took ~0.5 s): these bounds keep one parse in the tens of milliseconds and
# the rendering recursion far from Python's limit, well above what a rule or panel needs.
MAX_NESTING = 32
MAX_OPERATORS = 100
# Go's time.Duration ends near 292 years; ten years is far beyond any sensible range or offset.
MAX_DURATION = timedelta(days=3650)

_SCHEMA = re.compile(r"[a-z][a-z0-9_]{0,62}")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
# Largest first: a duration is written in the largest unit that divides it exactly.
_DURATION_UNITS = (
    ("y", 365 * 86_400_000),
    ("w", 7 * 86_400_000),
    ("d", 86_400_000),
    ("h", 3_600_000),
    ("m", 60_000),
    ("s", 1000),
    ("ms", 1),
)
_MATCH_OPS = (
    (pp.MatchOp.Equal, "="),
    (pp.MatchOp.NotEqual, "!="),
    (pp.MatchOp.Re, "=~"),
    (pp.MatchOp.NotRe, "!~"),
)
# Argument positions that are label names, per function (the rest are values or separators).
_LABEL_ARGUMENTS = {
    "label_replace": lambda count: {1, 3},
    "label_join": lambda count: {1, *range(3, count)},
    "sort_by_label": lambda count: set(range(1, count)),
    "sort_by_label_desc": lambda count: set(range(1, count)),
}
# Aggregations promql-parser knows that Prometheus only has behind a feature flag.
_EXPERIMENTAL_AGGREGATIONS = {"limitk", "limit_ratio"}
_SET_OPERATORS = {"and", "or", "unless"}


class PromQLError(ValueError):
    """A PromQL expression the portal refuses: `reason` says why, `position` where (0-based)."""

    def __init__(self, reason: str, position: int | None = None) -> None:
        where = f" (at character {position})" if position is not None else ""
        super().__init__(f"{reason}{where}")
        self.reason = reason
        self.position = position


def scope_to_tenant(expr: str, schema: str) -> str:
    """`expr` rewritten so every selector carries tenant="<schema>"; PromQLError if refused."""
    if not isinstance(schema, str) or not _SCHEMA.fullmatch(schema):
        raise PromQLError(f"{schema!r} is not a valid tenant schema name")
    tokens, tree = _parse(expr)
    scoped = _render(tokens, tree, schema)
    _verify(scoped, schema)
    return scoped


def validate_expression(expr: str) -> None:
    """Raise PromQLError (reason, position) unless `expr` parses and the portal would accept it."""
    tokens, tree = _parse(expr)
    _render(tokens, tree, None)


def metric_names(expr: str) -> set[str]:
    """Names of the metrics `expr` selects by name (regular-expression names are left out)."""
    _, tree = _parse(expr)
    names: set[str] = set()
    for node in _nodes(tree):
        if isinstance(node, pp.VectorSelector):
            if node.name:
                names.add(node.name)
            names.update(
                m.value
                for m in node.matchers.matchers
                if m.name == "__name__" and m.op == pp.MatchOp.Equal
            )
    return names


# --- parsing -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Token:
    kind: str  # "ident", "number", "string", "punct"
    text: str
    start: int


_TWO_CHAR_PUNCT = {"==", "!=", ">=", "<=", "=~", "!~"}
_OPERATOR_PUNCT = {"+", "-", "*", "/", "%", "^", "==", "!=", ">=", "<=", ">", "<"}
_OPERATOR_WORDS = {"and", "or", "unless", "atan2"}


def _tokens(expr: str) -> list[_Token]:
    """A rough PromQL lexer, enough to bound nesting and point at the text an error is about."""
    tokens: list[_Token] = []
    i, n = 0, len(expr)
    while i < n:
        ch = expr[i]
        if ch.isspace():
            i += 1
        elif ch == "#":
            end = expr.find("\n", i)
            i = n if end < 0 else end
        elif ch in "\"'":
            j = i + 1
            while j < n and expr[j] != ch:
                j += 2 if expr[j] == "\\" else 1
            tokens.append(_Token("string", expr[i : j + 1], i))
            i = j + 1
        elif ch == "`":
            end = expr.find("`", i + 1)
            j = n if end < 0 else end + 1
            tokens.append(_Token("string", expr[i:j], i))
            i = j
        elif ch.isalpha() or ch in "_:":
            j = i + 1
            while j < n and (expr[j].isalnum() or expr[j] in "_:"):
                j += 1
            tokens.append(_Token("ident", expr[i:j], i))
            i = j
        elif ch.isdigit() or (ch == "." and i + 1 < n and expr[i + 1].isdigit()):
            j = i + 1
            while j < n and (expr[j].isalnum() or expr[j] in "._"):
                if expr[j] in "eE" and j + 1 < n and expr[j + 1] in "+-":
                    j += 1
                j += 1
            tokens.append(_Token("number", expr[i:j], i))
            i = j
        else:
            size = 2 if expr[i : i + 2] in _TWO_CHAR_PUNCT else 1
            tokens.append(_Token("punct", expr[i : i + size], i))
            i += size
    return tokens


def _check_size(tokens: list[_Token]) -> None:
    """Refuse expressions nested or chained beyond what the parser handles quickly."""
    depth = operators = braces = 0
    for index, token in enumerate(tokens):
        following = tokens[index + 1].text if index + 1 < len(tokens) else ""
        if token.kind == "punct" and token.text in {"(", "[", "{"}:
            depth += 1
            braces += token.text == "{"
            if depth > MAX_NESTING:
                raise PromQLError(
                    f"the expression is nested more than {MAX_NESTING} levels deep", token.start
                )
        elif token.kind == "punct" and token.text in {")", "]", "}"}:
            depth = max(depth - 1, 0)
            braces = max(braces - (token.text == "}"), 0)
        elif token.kind == "punct" and token.text == "@" and following == "-":
            # promql-parser cannot represent these (reading one aborts inside the library).
            raise PromQLError("@ timestamps before 1970 are not supported", token.start)
        elif braces == 0 and (
            (token.kind == "punct" and token.text in _OPERATOR_PUNCT)
            or (token.kind == "ident" and token.text in _OPERATOR_WORDS)
        ):
            operators += 1
            if operators > MAX_OPERATORS:
                raise PromQLError(
                    f"the expression has more than {MAX_OPERATORS} operators", token.start
                )


def _is_panic(exc: BaseException) -> bool:
    # pyo3 turns a Rust panic into PanicException, a BaseException the module does not export.
    return type(exc).__name__ == "PanicException"


def _parse(expr: str) -> tuple[list[_Token], pp.Expr]:
    """Tokens and syntax tree of `expr`, after the checks that must come before parsing."""
    if not isinstance(expr, str):
        raise PromQLError("the expression must be text")
    if not expr.strip():
        raise PromQLError("the expression is empty")
    if len(expr) > MAX_EXPRESSION_LENGTH:
        raise PromQLError(
            f"the expression is longer than {MAX_EXPRESSION_LENGTH} characters",
            MAX_EXPRESSION_LENGTH,
        )
    nul = expr.find("\x00")
    if nul >= 0:
        raise PromQLError("the expression contains a NUL character", nul)
    try:
        expr.encode()
    except UnicodeEncodeError as exc:
        raise PromQLError("the expression is not valid Unicode text", exc.start) from None
    tokens = _tokens(expr)
    _check_size(tokens)
    try:
        return tokens, pp.parse(expr)
    except ValueError as exc:
        message = str(exc)
        reason = "this is not valid PromQL" if message == "invalid promql query" else message
        raise PromQLError(reason, _locate(expr, tokens, message)) from None
    except BaseException as exc:
        if _is_panic(exc):
            raise PromQLError("the expression could not be parsed") from None
        raise


# Forms a parser error may state its place in (this promql-parser version states none).
_POSITION_IN_MESSAGE = re.compile(r"\b(?:at position|position|pos)\s*:?\s*(\d+)\b")
_LINE_COLUMN_IN_MESSAGE = re.compile(r"^(\d+):(\d+)\b|\bline (\d+),? col(?:umn)? (\d+)\b")
_QUOTED_IN_MESSAGE = re.compile(r"'([^']+)'")


def _locate(expr: str, tokens: list[_Token], message: str) -> int | None:
    """Best guess at where in `expr` the parser's error `message` points; None if unknown."""
    if match := _POSITION_IN_MESSAGE.search(message):
        # A Rust parser counts bytes; the editor counts characters.
        offset = int(match.group(1))
        return min(len(expr.encode()[:offset].decode(errors="ignore")), len(expr))
    if match := _LINE_COLUMN_IN_MESSAGE.search(message):
        found = [int(group) for group in match.groups() if group is not None]
        line, column = found
        lines = expr.split("\n")
        if 1 <= line <= len(lines):
            return min(sum(len(x) + 1 for x in lines[: line - 1]) + max(column - 1, 0), len(expr))
    if "end of input" in message:
        return len(expr.rstrip())
    if "unclosed left parenthesis" in message:
        opened = [t.start for t in _unmatched(tokens, "(", ")")]
        return opened[-1] if opened else None
    if "unexpected right parenthesis" in message:
        closing = _first_unmatched_closing(tokens, "(", ")")
        return closing
    quoted = _QUOTED_IN_MESSAGE.search(message)
    if quoted is None:
        return None
    subject = quoted.group(1)
    if "function" in message or "in call to" in message:
        for token, following in zip(tokens, tokens[1:], strict=False):
            if token.kind == "ident" and token.text == subject and following.text == "(":
                return token.start
    if "escape sequence" in message:
        position = expr.find("\\" + subject)
        return position if position >= 0 else None
    if "metric name" in message:
        position = expr.find("__name__")
        return position if position >= 0 else None
    if "unexpected character" in message:
        position = expr.find(subject)
        return position if position >= 0 else None
    return None


def _unmatched(tokens: list[_Token], opening: str, closing: str) -> list[_Token]:
    stack: list[_Token] = []
    for token in tokens:
        if token.kind == "punct" and token.text == opening:
            stack.append(token)
        elif token.kind == "punct" and token.text == closing and stack:
            stack.pop()
    return stack


def _first_unmatched_closing(tokens: list[_Token], opening: str, closing: str) -> int | None:
    depth = 0
    for token in tokens:
        if token.kind == "punct" and token.text == opening:
            depth += 1
        elif token.kind == "punct" and token.text == closing:
            if depth == 0:
                return token.start
            depth -= 1
    return None


# --- rendering ---------------------------------------------------------------------------------


def _render(tokens: list[_Token], tree: pp.Expr, schema: str | None) -> str:
    """PromQL text of `tree`, scoped to `schema` (None: checked but not scoped)."""
    renderer = _Renderer(schema)
    try:
        return renderer.expr(tree)
    except _Refusal as refusal:
        raise PromQLError(refusal.reason, _locate_refusal(tokens, refusal)) from None
    except (ValueError, OverflowError) as exc:
        # promql-parser raises these when a value (an @ timestamp) does not fit Python's types.
        raise PromQLError(f"the expression holds a value out of range: {exc}") from None
    except BaseException as exc:
        if _is_panic(exc):
            raise PromQLError("the expression holds a value out of range") from None
        raise


class _Refusal(Exception):
    """Why the renderer stopped, and what to look for in the text to say where."""

    def __init__(self, reason: str, look_for: str | None = None, kind: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.look_for = look_for
        self.kind = kind  # "matcher", "label", "string" or ""


def _tenant_refusal(kind: str) -> _Refusal:
    return _Refusal(
        f"the label {TENANT_LABEL} is set by the portal and cannot be named in an expression",
        TENANT_LABEL,
        kind,
    )


def _locate_refusal(tokens: list[_Token], refusal: _Refusal) -> int | None:
    """Where the text behind `refusal` starts, when it can be found."""
    if refusal.look_for is None:
        return None
    wanted = refusal.look_for
    quoted = {f'"{wanted}"', f"'{wanted}'", f"`{wanted}`"}
    for index, token in enumerate(tokens):
        following = tokens[index + 1].text if index + 1 < len(tokens) else ""
        named = (token.kind != "string" and token.text == wanted) or (
            token.kind == "string" and token.text in quoted
        )
        if not named:
            continue
        if refusal.kind == "matcher" and following in {"=", "!=", "=~", "!~"}:
            return token.start
        if refusal.kind == "label" and following in {",", ")"} and token.kind == "ident":
            return token.start
        if refusal.kind == "string" and token.kind == "string":
            return token.start
        if refusal.kind == "":
            return token.start
    return None


class _Renderer:
    """Writes a promql-parser tree back as PromQL, adding the tenant matcher to every selector."""

    def __init__(self, schema: str | None, *, refuse_tenant: bool = True) -> None:
        self.schema = schema
        self.refuse_tenant = refuse_tenant

    def expr(self, node: pp.Expr) -> str:
        if isinstance(node, pp.VectorSelector):
            return self.selector(node) + self.modifiers(node.at, node.offset)
        if isinstance(node, pp.MatrixSelector):
            inner = node.vector_selector
            rendered = f"{self.selector(inner)}[{_duration(node.range)}]"
            return rendered + self.modifiers(inner.at, inner.offset)
        if isinstance(node, pp.SubqueryExpr):
            step = _duration(node.step) if node.step is not None else ""
            rendered = f"{self.expr(node.expr)}[{_duration(node.range)}:{step}]"
            return rendered + self.modifiers(node.at, node.offset)
        if isinstance(node, pp.Call):
            return self.call(node)
        if isinstance(node, pp.AggregateExpr):
            return self.aggregation(node)
        if isinstance(node, pp.BinaryExpr):
            return self.binary(node)
        if isinstance(node, pp.ParenExpr):
            return f"({self.expr(node.expr)})"
        if isinstance(node, pp.UnaryExpr):
            return f"-{self.expr(node.expr)}"
        if isinstance(node, pp.NumberLiteral):
            return _number(node.val)
        if isinstance(node, pp.StringLiteral):
            return _quote(node.val)
        raise _Refusal(f"{type(node).__name__} expressions are not supported")

    def selector(self, node: pp.VectorSelector) -> str:
        if node.matchers.or_matchers:
            raise _Refusal("'or' between label matchers is not supported by Prometheus", "or")
        matchers = list(node.matchers.matchers)
        prefix = node.name or ""
        if prefix and not _METRIC_NAME.fullmatch(prefix):
            # A quoted name outside the classic character set: Prometheus takes it as __name__.
            matchers.insert(0, pp.Matcher(pp.MatchOp.Equal, "__name__", prefix))
            prefix = ""
        parts = [self.matcher(m) for m in matchers]
        if self.schema is not None:
            parts.append(f'{TENANT_LABEL}="{self.schema}"')
        return f"{prefix}{{{','.join(parts)}}}"

    def matcher(self, matcher: pp.Matcher) -> str:
        name = self.label_name(matcher.name, "matcher")
        op = next((text for kind, text in _MATCH_OPS if matcher.op == kind), None)
        if op is None:
            raise _Refusal(f"the matcher on {name} has an unsupported operator")
        return f"{name}{op}{_quote(matcher.value)}"

    def label_name(self, name: str, kind: str) -> str:
        if name == TENANT_LABEL and self.refuse_tenant:
            raise _tenant_refusal(kind)
        if not _LABEL_NAME.fullmatch(name):
            raise _Refusal(
                f"{name!r} is not a label name Prometheus accepts (letters, digits and _)", name
            )
        return name

    def label_list(self, labels: list[str]) -> str:
        return "(" + ", ".join(self.label_name(label, "label") for label in labels) + ")"

    def modifiers(self, at: pp.AtModifier | None, offset: timedelta | None) -> str:
        rendered = ""
        if at is not None:
            rendered += f" @ {_at(at)}"
        if offset is not None:
            rendered += f" offset {_duration(offset)}"
        return rendered

    def call(self, node: pp.Call) -> str:
        name = node.func.name
        if node.func.experimental:
            raise _Refusal(
                f"the function {name} is experimental in Prometheus and not enabled", name
            )
        label_positions = _LABEL_ARGUMENTS.get(name, lambda count: set())(len(node.args))
        for position, arg in enumerate(node.args):
            if (
                self.refuse_tenant
                and isinstance(arg, pp.StringLiteral)
                and arg.val == TENANT_LABEL
                and (position in label_positions or name not in _LABEL_ARGUMENTS)
            ):
                raise _tenant_refusal("string")
            # An empty name is left to Prometheus (label_join allows it as a source).
            if position in label_positions and isinstance(arg, pp.StringLiteral) and arg.val:
                self.label_name(arg.val, "string")
        return f"{name}({', '.join(self.expr(arg) for arg in node.args)})"

    def aggregation(self, node: pp.AggregateExpr) -> str:
        op = str(node.op)
        if op in _EXPERIMENTAL_AGGREGATIONS:
            raise _Refusal(
                f"the aggregation {op} is experimental in Prometheus and not enabled", op
            )
        grouping = ""
        if node.modifier is not None:
            word = "by" if node.modifier.type == pp.AggModifierType.By else "without"
            grouping = f" {word} {self.label_list(list(node.modifier.labels))}"
        args = self.expr(node.expr)
        if node.param is not None:
            param = node.param
            if (
                op == "count_values"
                and isinstance(param, pp.StringLiteral)
                and param.val == TENANT_LABEL
                and self.refuse_tenant
            ):
                raise _tenant_refusal("string")
            args = f"{self.expr(param)}, {args}"
        return f"{op}{grouping} ({args})" if grouping else f"{op}({args})"

    def binary(self, node: pp.BinaryExpr) -> str:
        op = str(node.op)
        words = [op]
        modifier = node.modifier
        if modifier is not None:
            fill = modifier.fill_values
            if fill is not None and (fill.lhs is not None or fill.rhs is not None):
                raise _Refusal("fill modifiers are not supported by Prometheus", "fill")
            if modifier.return_bool:
                words.append("bool")
            if modifier.matching is not None:
                include = modifier.matching.type == pp.LabelModifierType.Include
                words.append(
                    ("on " if include else "ignoring ")
                    + self.label_list(list(modifier.matching.labels))
                )
            if op not in _SET_OPERATORS:
                if modifier.card == pp.VectorMatchCardinality.ManyToOne:
                    words.append("group_left" + self.group_labels(modifier.group_labels))
                elif modifier.card == pp.VectorMatchCardinality.OneToMany:
                    words.append("group_right" + self.group_labels(modifier.group_labels))
        return f"{self.expr(node.lhs)} {' '.join(words)} {self.expr(node.rhs)}"

    def group_labels(self, labels: list[str] | None) -> str:
        return f" {self.label_list(list(labels))}" if labels else ""


def _quote(value: str) -> str:
    """A double-quoted PromQL string that reads back as exactly `value`."""
    out = []
    for ch in value:
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Inf" if value > 0 else "-Inf"
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def _duration(value: timedelta) -> str:
    if abs(value) > MAX_DURATION:
        raise _Refusal("durations longer than 10 years are not supported")
    total = value // _MS
    if total == 0:
        return "0s"
    sign = "-" if total < 0 else ""
    total = abs(total)
    for unit, size in _DURATION_UNITS:
        if total % size == 0:
            return f"{sign}{total // size}{unit}"
    raise AssertionError("every whole number of milliseconds has a unit")


def _at(at: pp.AtModifier) -> str:
    if at.type == pp.AtModifierType.Start:
        return "start()"
    if at.type == pp.AtModifierType.End:
        return "end()"
    try:
        moment = at.at
    except (ValueError, OverflowError):
        raise _Refusal("the @ timestamp is out of range", "@") from None
    millis = (moment - _EPOCH) // _MS
    seconds, fraction = divmod(millis, 1000)
    return f"{seconds}.{fraction:03d}" if fraction else str(seconds)


# --- checking the result -----------------------------------------------------------------------


def _nodes(tree: pp.Expr) -> Iterator[pp.Expr]:
    """Every node of `tree`, without recursion."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, pp.MatrixSelector):
            stack.append(node.vector_selector)
        elif isinstance(node, pp.SubqueryExpr | pp.ParenExpr | pp.UnaryExpr):
            stack.append(node.expr)
        elif isinstance(node, pp.AggregateExpr):
            stack.append(node.expr)
            if node.param is not None:
                stack.append(node.param)
        elif isinstance(node, pp.BinaryExpr):
            stack.extend((node.lhs, node.rhs))
        elif isinstance(node, pp.Call):
            stack.extend(node.args)


def _verify(scoped: str, schema: str) -> None:
    """Parse the output again: every selector must carry exactly the tenant's matcher."""
    unsafe = PromQLError("the expression could not be rewritten safely")
    try:
        tree = pp.parse(scoped)
    except ValueError:
        raise unsafe from None
    for node in _nodes(tree):
        if isinstance(node, pp.VectorSelector):
            tenant = [m for m in node.matchers.matchers if m.name == TENANT_LABEL]
            if (
                node.matchers.or_matchers
                or len(tenant) != 1
                or tenant[0].op != pp.MatchOp.Equal
                or tenant[0].value != schema
            ):
                raise unsafe
    # Written out again it must read the same: no string escaped into syntax on the way.
    if _Renderer(None, refuse_tenant=False).expr(tree) != scoped:
        raise unsafe
