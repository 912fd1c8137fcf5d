"""PromQL scoping: each selector gets tenant="<schema>"; naming `tenant` or bad input is refused."""

from __future__ import annotations

import promql_parser
import pytest

from alerts.promql import (
    MAX_EXPRESSION_LENGTH,
    MAX_NESTING,
    MAX_OPERATORS,
    PromQLError,
    metric_names,
    scope_to_tenant,
    validate_expression,
)

T = 'tenant="acme"'

# (expression a tenant writes, what Prometheus is given for tenant acme)
SCOPED = [
    ("http_requests_total", f"http_requests_total{{{T}}}"),
    ('up{job="api"}', f'up{{job="api",{T}}}'),
    ("vector(1)", "vector(1)"),
    ("time() - 1.5e9", "time() - 1500000000"),
    ("rate(x[5m])", f"rate(x{{{T}}}[5m])"),
    ("max_over_time(rate(x[1m])[10m:1m])", f"max_over_time(rate(x{{{T}}}[1m])[10m:1m])"),
    ("max_over_time(x[10m:])", f"max_over_time(x{{{T}}}[10m:])"),
    ("x @ 1700000000", f"x{{{T}}} @ 1700000000"),
    ("x @ 1700000000.25", f"x{{{T}}} @ 1700000000.250"),
    ("x @ start()", f"x{{{T}}} @ start()"),
    ("x offset 5m", f"x{{{T}}} offset 5m"),
    ("x offset -90s", f"x{{{T}}} offset -90s"),
    ("rate(x[5m] @ end() offset 1m)", f"rate(x{{{T}}}[5m] @ end() offset 1m)"),
    ("x[5m:1m] offset 2m @ 5", f"x{{{T}}}[5m:1m] @ 5 offset 2m"),
    ('absent(up{job="a"})', f'absent(up{{job="a",{T}}})'),
    ("absent_over_time(up[5m])", f"absent_over_time(up{{{T}}}[5m])"),
    ('{__name__=~"http_.*"}', f'{{__name__=~"http_.*",{T}}}'),
    ('{__name__=~".+", job!="x"}', f'{{__name__=~".+",job!="x",{T}}}'),
    ("a or on() b", f"a{{{T}}} or on () b{{{T}}}"),
    ("a unless on() b", f"a{{{T}}} unless on () b{{{T}}}"),
    ("a and ignoring(job) b", f"a{{{T}}} and ignoring (job) b{{{T}}}"),
    ("a or b", f"a{{{T}}} or b{{{T}}}"),
    ("a * on(job) group_left(team) b", f"a{{{T}}} * on (job) group_left (team) b{{{T}}}"),
    ("a / ignoring(code) group_right b", f"a{{{T}}} / ignoring (code) group_right b{{{T}}}"),
    ("x > bool 1", f"x{{{T}}} > bool 1"),
    ("sum without (instance) (x)", f"sum without (instance) (x{{{T}}})"),
    ("sum(x) by (job)", f"sum by (job) (x{{{T}}})"),
    ("topk(3, x)", f"topk(3, x{{{T}}})"),
    ('count_values("version", build_info)', f'count_values("version", build_info{{{T}}})'),
    (
        "histogram_quantile(0.9, sum by (le) (rate(http_duration_seconds_bucket[5m])))",
        f"histogram_quantile(0.9, sum by (le) (rate(http_duration_seconds_bucket{{{T}}}[5m])))",
    ),
    (
        'label_replace(up, "owner", "$1", "instance", "(.*):.*")',
        f'label_replace(up{{{T}}}, "owner", "$1", "instance", "(.*):.*")',
    ),
    (
        'label_join(up, "where", ",", "job", "instance")',
        f'label_join(up{{{T}}}, "where", ",", "job", "instance")',
    ),
    ("-x ^ 2", f"-x{{{T}}} ^ 2"),
    ("(a - b) - c", f"(a{{{T}}} - b{{{T}}}) - c{{{T}}}"),
    ("a - (b - c)", f"a{{{T}}} - (b{{{T}}} - c{{{T}}})"),
    ("tenant_quota", f"tenant_quota{{{T}}}"),
    ('{"dotted.metric.name"}', f'{{__name__="dotted.metric.name",{T}}}'),
    ("x # a comment", f"x{{{T}}}"),
    ('x{path="/a\\"b\\\\c"}', f'x{{path="/a\\"b\\\\c",{T}}}'),
    ('x{msg="line\\nbreak"}', f'x{{msg="line\\nbreak",{T}}}'),
    ("x{job='single'}", f'x{{job="single",{T}}}'),
    ('x{city="Zürich"}', f'x{{city="Zürich",{T}}}'),
]


@pytest.mark.parametrize(("expr", "expected"), SCOPED, ids=[case[0] for case in SCOPED])
def test_it_adds_the_tenant_matcher_to_every_selector(expr, expected):
    assert scope_to_tenant(expr, "acme") == expected


@pytest.mark.parametrize("expr", [case[0] for case in SCOPED])
def test_it_changes_nothing_but_the_tenant_matcher(expr):
    # promql-parser's own rendering, as a fingerprint of the tree: only the matcher is new.
    scoped = scope_to_tenant(expr, "acme")
    unscoped = scoped.replace(f",{T}", "").replace(T, "")
    assert str(promql_parser.parse(unscoped)) == str(promql_parser.parse(expr))


def test_each_schema_gets_its_own_matcher():
    assert scope_to_tenant("sum(rate(x[5m]))", "globex") == 'sum(rate(x{tenant="globex"}[5m]))'


def test_a_quote_inside_a_value_cannot_end_the_selector():
    # Rendered without escaping, the value would close the braces and add `secret` unscoped.
    expr = 'up{job="a\\"} or secret or x{job=\\"b"}'
    scoped = scope_to_tenant(expr, "acme")
    tree = promql_parser.parse(scoped)
    assert isinstance(tree, promql_parser.VectorSelector)
    assert tree.name == "up"
    assert [(m.name, m.value) for m in tree.matchers.matchers] == [
        ("job", 'a"} or secret or x{job="b'),
        ("tenant", "acme"),
    ]
    assert metric_names(expr) == {"up"}


def test_a_scoped_expression_is_refused_when_scoped_again():
    with pytest.raises(PromQLError, match="tenant"):
        scope_to_tenant(scope_to_tenant("x", "acme"), "acme")


TENANT_REASON = "the label tenant is set by the portal and cannot be named in an expression"

# (expression, where the refusal points)
NAMES_TENANT = [
    ('x{tenant="globex"}', 2),
    ('x{tenant!="acme"}', 2),
    ('x{tenant=~".*"}', 2),
    ('x{tenant!~"acme"}', 2),
    ('{__name__="x", tenant="globex"}', 15),
    ('x{"tenant"="globex"}', 2),
    ('sum(rate(x{job="a", tenant=~"glob.*"}[5m]))', 20),
    ("sum by (tenant) (x)", 8),
    ("sum without (tenant) (x)", 13),
    ("sum(x) by (job, tenant)", 16),
    ("a or on(tenant) b", 8),
    ("a unless ignoring(tenant) b", 18),
    ("a * on(job) group_left(tenant) b", 23),
    ("a * ignoring(job) group_right(tenant) b", 30),
    ('label_replace(x, "tenant", "globex", "", "")', 17),
    ('label_replace(x, "owner", "$1", "tenant", "(.*)")', 32),
    ('label_join(x, "tenant", ",", "job")', 14),
    ('label_join(x, "owner", ",", "job", "tenant")', 35),
    ('count_values("tenant", x)', 13),
    ('absent(x{tenant="globex"})', 9),
    ('max_over_time(x{tenant="globex"}[5m:1m])', 16),
]


@pytest.mark.parametrize(("expr", "position"), NAMES_TENANT, ids=[c[0] for c in NAMES_TENANT])
def test_naming_the_tenant_label_is_refused(expr, position):
    with pytest.raises(PromQLError) as refused:
        scope_to_tenant(expr, "acme")
    assert refused.value.reason == TENANT_REASON
    assert refused.value.position == position
    with pytest.raises(PromQLError):
        validate_expression(expr)


def test_tenant_as_a_label_value_or_metric_name_is_not_naming_the_label():
    assert scope_to_tenant('label_replace(x, "kind", "tenant", "", "")', "acme") == (
        f'label_replace(x{{{T}}}, "kind", "tenant", "", "")'
    )
    assert scope_to_tenant('x{kind="tenant"}', "acme") == f'x{{kind="tenant",{T}}}'


# (expression, words in the reason, position or None)
REFUSED = [
    ("", "empty", None),
    ("   \n ", "empty", None),
    ("x\x00", "NUL", 1),
    ('up{job="a\x00b"}', "NUL", 9),
    ("x" * (MAX_EXPRESSION_LENGTH + 1), f"longer than {MAX_EXPRESSION_LENGTH}", 10_000),
    ("sum(x", "unclosed left parenthesis", 3),
    ("sum by (job) (rate(x[5m])", "unclosed left parenthesis", 13),
    ("x)", "unexpected right parenthesis", 1),
    ('x{job="a"', "end of input", 9),
    ("rate(x[5m]", "unclosed", 4),
    ("nosuchfunc(x)", "unknown function", 0),
    ("1 + rate(x)", "expected type matrix", 4),
    ("x +", "not valid PromQL", None),
    ("foo bar", "not valid PromQL", None),
    ('x{job="\\d"}', "escape sequence", 7),
    ('x{job="a" or job="b"}', "'or' between label matchers", None),
    ('x{"dotted.label"="1"}', "not a label name Prometheus accepts", 2),
    ("a + fill(0) b", "fill modifiers", 4),
    ("info(x)", "experimental", 0),
    ("limitk(1, x)", "experimental", 0),
    ("x @ -10", "before 1970", 2),
    ("x @ 1e30", "out of range", 2),
    ("x offset 20y", "longer than 10 years", None),
    ("(" * (MAX_NESTING + 1) + "x" + ")" * (MAX_NESTING + 1), "nested more than", MAX_NESTING),
    (" + ".join(["x"] * (MAX_OPERATORS + 2)), f"more than {MAX_OPERATORS} operators", None),
]


@pytest.mark.parametrize(("expr", "reason", "position"), REFUSED, ids=[c[0][:40] for c in REFUSED])
def test_bad_expressions_are_refused_with_reason_and_position(expr, reason, position):
    with pytest.raises(PromQLError) as refused:
        scope_to_tenant(expr, "acme")
    assert reason in refused.value.reason
    if position is not None:
        assert refused.value.position == position
    with pytest.raises(PromQLError) as again:
        validate_expression(expr)
    assert again.value.reason == refused.value.reason


def test_the_operator_limit_points_at_the_first_operator_over_it():
    expr = " + ".join(["x"] * (MAX_OPERATORS + 2))
    with pytest.raises(PromQLError) as refused:
        scope_to_tenant(expr, "acme")
    assert refused.value.position == expr.index("+") + 4 * MAX_OPERATORS


def test_a_refusal_is_a_value_error_whose_message_holds_reason_and_position():
    with pytest.raises(ValueError, match=r"unclosed left parenthesis \(at character 3\)"):
        scope_to_tenant("sum(x", "acme")


@pytest.mark.parametrize(
    "schema", ["", "Acme", "1acme", "acme-corp", "acme\n", "a" * 64, "acme corp", None, 7]
)
def test_a_schema_that_is_not_an_identifier_is_refused(schema):
    with pytest.raises(PromQLError, match="not a valid tenant schema name"):
        scope_to_tenant("x", schema)


def test_the_longest_schema_name_is_accepted():
    schema = "a" + "b" * 62
    assert scope_to_tenant("x", schema) == f'x{{tenant="{schema}"}}'


def test_text_that_is_not_a_string_is_refused():
    with pytest.raises(PromQLError, match="must be text"):
        scope_to_tenant(b"x", "acme")  # type: ignore[arg-type]


def test_valid_expressions_validate():
    for expr, _ in SCOPED:
        validate_expression(expr)


def test_metric_names_lists_named_selectors_only():
    expr = (
        'sum(rate(http_requests_total[5m])) / on() group_left sum(up{job="a"})'
        ' or {__name__="queue_depth"} or {__name__=~"ignored_.*"} or vector(1)'
    )
    assert metric_names(expr) == {"http_requests_total", "up", "queue_depth"}
    assert metric_names("vector(1)") == set()
    with pytest.raises(PromQLError, match="unclosed"):
        metric_names("sum(x")


@pytest.mark.parametrize(
    ("message", "position"),
    [("parse error at position 9", 9), ("line 2, column 3: unexpected", 10), ("bad input", None)],
)
def test_a_position_the_parser_states_is_passed_on(monkeypatch, message, position):
    def refuse(expr):
        raise ValueError(message)

    monkeypatch.setattr(promql_parser, "parse", refuse)
    with pytest.raises(PromQLError) as refused:
        validate_expression("sum(up)\n  + x")
    assert refused.value.reason == message
    assert refused.value.position == position
