"""The preview of a rule before it is saved: threshold, fire periods given `for`, and the blast
radius through the notification policy, on synthetic series; then once on a real Prometheus
holding two tenants' series, through the editor page."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from django_tenants.utils import tenant_context

from alerts import preview, queries
from alerts.blast_radius import (
    AlertTimeline,
    FirePeriod,
    ReceiverTarget,
    Timings,
    blast_radius,
    simulate_group,
)
from alerts.preview import Threshold, active_grid, fire_periods, split_threshold
from tests.backend_servers import running_exporter, running_prometheus
from tests.conftest import wait_for

MIN = 60.0
T0 = 1_700_000_000.0  # a Tuesday, 22:13:20 UTC
SLACK = ReceiverTarget("Team Slack", "slack", "Slack", usable=True, send_resolved=True)
SMS = ReceiverTarget("On-call SMS", "sms", "SMS", usable=True, send_resolved=False)
UNSET = ReceiverTarget("On-call PagerDuty", "pagerduty", "PagerDuty", False, True)
TIMINGS = Timings(("alertname",), group_wait=30, group_interval=5 * MIN, repeat_interval=4 * 3600)


# ---- threshold ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("queue_depth > 100", Threshold("queue_depth", ">", 100.0)),
        ("sum by (job) (rate(x[5m])) >= 0.5", Threshold("sum by (job) (rate(x[5m]))", ">=", 0.5)),
        ("a + b < -1e3", Threshold("a + b", "<", -1000.0)),
        ("a > 5 > 3", Threshold("a > 5", ">", 3.0)),
        ("up == 0", Threshold("up", "==", 0.0)),
    ],
)
def test_a_trailing_comparison_is_the_threshold(expr, expected):
    assert split_threshold(expr) == expected


@pytest.mark.parametrize(
    "expr", ["a > 5 or b", "a > bool 5", "a > b", "rate(x[5m])", "5 < a", "a > 5 # note", ""]
)
def test_no_threshold_unless_the_expression_ends_in_one(expr):
    assert split_threshold(expr) is None


def test_a_threshold_compares_like_promql():
    threshold = Threshold("x", ">", 5.0)
    assert threshold.passes(6.0) and not threshold.passes(5.0)
    assert not threshold.passes(float("nan"))


# ---- fire periods -------------------------------------------------------------------------------


def grid(pattern: str) -> list[bool]:
    """'..##.' -> active where '#'."""
    return [c == "#" for c in pattern]


def spans(periods: list[FirePeriod], start: float = 0.0, step: float = MIN) -> list[tuple]:
    return [((p.start - start) / step, (p.end - start) / step, p.ongoing) for p in periods]


def test_without_for_a_rule_fires_while_its_condition_holds():
    periods = fire_periods(grid("..##...#."), start=0, step=MIN, for_s=0)
    assert spans(periods) == [(2, 4, False), (7, 8, False)]


def test_for_holds_a_rule_pending_until_the_condition_has_held_long_enough():
    # for 2m at a 1m step: firing from the third consecutive evaluation.
    periods = fire_periods(grid(".##..####..#####"), start=0, step=MIN, for_s=2 * MIN)
    assert spans(periods) == [(7, 9, False), (13, 15, True)]


def test_a_gap_resets_pending():
    assert fire_periods(grid("##.##.##."), start=0, step=MIN, for_s=2 * MIN) == []


def test_keep_firing_for_bridges_short_gaps():
    periods = fire_periods(
        grid("###..###......"), start=0, step=MIN, for_s=0, keep_firing_s=3 * MIN
    )
    # Still firing through the 2-minute gap; resolved 3 minutes after the condition last held.
    assert spans(periods) == [(0, 10, False)]


def test_the_active_grid_reads_values_against_the_threshold_and_gaps_as_inactive():
    points = [(T0 + 0, 1.0), (T0 + 60, 7.0), (T0 + 180, 9.0), (T0 + 240, float("nan"))]
    threshold = Threshold("x", ">", 5.0)
    assert active_grid(points, start=T0, step=MIN, count=5, threshold=threshold) == [
        False,
        True,
        False,  # no sample: the series was absent
        True,
        False,  # NaN compares false
    ]
    assert active_grid(points, start=T0, step=MIN, count=5, threshold=None) == [
        True,
        True,
        False,
        True,
        True,
    ]


# ---- notifications (Alertmanager's grouping and timing) ----------------------------------------


def alert(start_min: float, end_min: float | None, **labels) -> AlertTimeline:
    end = T0 + (end_min if end_min is not None else 10_000) * MIN
    period = FirePeriod(T0 + start_min * MIN, end, ongoing=end_min is None)
    return AlertTimeline(labels={"alertname": "QueueBacklog", **labels}, periods=(period,))


def minutes(outcome) -> list[float]:
    return [round((n.at - T0) / MIN, 2) for n in outcome.sent]


def test_one_alert_is_told_once_when_firing_and_once_when_resolved():
    outcome = simulate_group([alert(0, 30)], TIMINGS, window_end=T0 + 120 * MIN, send_resolved=True)
    # group_wait 30s, then every group_interval (5m): the 30.5 min tick carries the resolution.
    assert minutes(outcome) == [0.5, 30.5]
    assert [(n.firing, n.resolved) for n in outcome.sent] == [(1, 0), (0, 1)]


def test_a_receiver_without_resolved_messages_is_told_once():
    outcome = simulate_group(
        [alert(0, 30)], TIMINGS, window_end=T0 + 120 * MIN, send_resolved=False
    )
    assert minutes(outcome) == [0.5]


def test_a_long_firing_alert_is_repeated_every_repeat_interval():
    timings = Timings(("alertname",), 30, 5 * MIN, 10 * MIN)
    outcome = simulate_group([alert(0, 60)], timings, window_end=T0 + 120 * MIN, send_resolved=True)
    assert minutes(outcome) == [0.5, 10.5, 20.5, 30.5, 40.5, 50.5, 60.5]


def test_an_alert_still_firing_at_the_window_end_is_not_resolved():
    outcome = simulate_group(
        [alert(0, None)], TIMINGS, window_end=T0 + 60 * MIN, send_resolved=True
    )
    assert minutes(outcome) == [0.5]


def test_alerts_joining_a_group_go_out_at_the_next_group_interval():
    alerts = [alert(0, 40, route="/a"), alert(2, 40, route="/b"), alert(3, 40, route="/c")]
    outcome = simulate_group(alerts, TIMINGS, window_end=T0 + 120 * MIN, send_resolved=True)
    assert minutes(outcome) == [0.5, 5.5, 40.5]
    assert [(n.firing, n.resolved) for n in outcome.sent] == [(1, 0), (3, 0), (0, 3)]


def test_a_group_that_emptied_starts_again_with_group_wait():
    alerts = [alert(0, 10, route="/a"), alert(50, 55, route="/a")]
    outcome = simulate_group(alerts, TIMINGS, window_end=T0 + 120 * MIN, send_resolved=True)
    assert minutes(outcome) == [0.5, 10.5, 50.5, 55.5]


def test_grouping_by_alertname_sends_one_message_for_many_series():
    alerts = [alert(0, 20, route=f"/r{i}") for i in range(5)]
    grouped = blast_radius(alerts, TIMINGS, [SLACK, SMS, UNSET], window_end=T0 + 60 * MIN)
    assert (grouped.alerts, grouped.groups) == (5, 1)
    assert {r.receiver.name: r.messages for r in grouped.receivers} == {
        "Team Slack": 2,
        "On-call SMS": 1,
        "On-call PagerDuty": 2,
    }
    # A receiver that is not configured sends nothing, so it counts for nobody.
    assert grouped.messages == 3

    per_series = Timings(("...",), 30, 5 * MIN, 4 * 3600)
    split = blast_radius(alerts, per_series, [SLACK], window_end=T0 + 60 * MIN)
    assert (split.groups, split.receivers[0].messages) == (5, 10)


def test_a_maintenance_window_holds_messages_back_until_it_ends():
    # T0 is a Tuesday 22:13:20 UTC; the window covers Tuesdays 22:00-23:00.
    window = {"weekdays": ["tuesday"], "times": [{"start_time": "22:00", "end_time": "23:00"}]}
    timings = Timings(("alertname",), 30, 5 * MIN, 4 * 3600, mute_intervals=(window,))
    outcome = simulate_group([alert(0, 20)], timings, window_end=T0 + 120 * MIN, send_resolved=True)
    assert outcome.sent == []  # fired and resolved inside the window: nobody told
    assert outcome.muted >= 1

    long = simulate_group([alert(0, None)], timings, window_end=T0 + 120 * MIN, send_resolved=True)
    # Still firing after 23:00: told at the first flush after the window (flushes come every
    # 5 minutes from 22:13:50).
    first = datetime.fromtimestamp(long.sent[0].at, tz=UTC)
    assert (first.hour, first.minute, first.second) == (23, 3, 50)


def test_a_window_in_another_time_zone_is_read_in_that_zone():
    # 22:13 UTC is 23:13 in Berlin (winter time): a Berlin 23:00-24:00 window mutes it.
    berlin = {
        "weekdays": ["tuesday"],
        "times": [{"start_time": "23:00", "end_time": "24:00"}],
        "location": "Europe/Berlin",
    }
    timings = Timings(("alertname",), 30, 5 * MIN, 4 * 3600, mute_intervals=(berlin,))
    outcome = simulate_group([alert(0, 10)], timings, window_end=T0 + 60 * MIN, send_resolved=True)
    assert outcome.sent == []


# ---- a whole preview on synthetic data ----------------------------------------------------------


def series(labels: dict, values: list[float | None], start: float, step: float) -> queries.Series:
    points = [(start + i * step, v) for i, v in enumerate(values) if v is not None]
    return queries.Series(labels=labels, points=points)


def test_a_preview_scopes_the_query_finds_periods_and_counts_messages(monkeypatch):
    now = datetime.fromtimestamp(T0, tz=UTC)
    asked = []

    def query_range(expr, start, end, step):
        asked.append((expr, step))
        first = start.timestamp()
        busy = [1.0] * 10 + [200.0] * 30 + [1.0] * 20
        return [series({"__name__": "queue_depth", "queue": "mail"}, busy, first, step)]

    monkeypatch.setattr(queries, "query_range", query_range)
    result = preview.preview_rule(
        schema="acme",
        kind="alert",
        name="QueueBacklog",
        expr="queue_depth > 100",
        for_duration="10m",
        severity="P2",
        interval="1m",
        range_key="1h",
        now=now,
        policy=(TIMINGS, [SLACK]),
    )
    assert asked == [('queue_depth{tenant="acme"}', 60.0)]
    assert result.scoped_expr == 'queue_depth{tenant="acme"} > 100'
    (row,) = result.periods
    (period,) = row.periods
    # Above 100 from minute 10 to 40; with for 10m it fires from minute 20.
    assert ((period.start - result.start) / MIN, (period.end - result.start) / MIN) == (20, 40)
    assert result.blast.receivers[0].messages == 2
    chart = result.chart_data()
    assert chart["threshold"] == 100.0
    assert chart["firing"] == [[round(period.start * 1000), round(period.end * 1000)]]
    assert chart["series"][0]["name"] == 'queue_depth{queue="mail"}'


def test_a_preview_without_prometheus_says_so(settings):
    settings.PROMETHEUS_URL = ""
    result = preview.preview_rule(
        schema="acme", kind="alert", name="X", expr="up == 0", policy=(TIMINGS, [])
    )
    assert not result.connected
    assert "not connected" in result.error


def test_a_preview_of_an_expression_naming_another_tenant_is_refused():
    result = preview.preview_rule(
        schema="acme", kind="alert", name="X", expr='up{tenant="globex"}', policy=(TIMINGS, [])
    )
    assert "label tenant" in result.error
    assert result.chart_series == []


# ---- on a real Prometheus -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory):
    with running_exporter() as exporter:
        exporter.set_series(
            [
                ("queue_depth", {"tenant": "acme", "queue": "emails"}, 250),
                ("queue_depth", {"tenant": "globex", "queue": "emails"}, 999),
                ("globex_only_metric", {"tenant": "globex"}, 1),
            ]
        )
        directory = Path(tmp_path_factory.mktemp("preview-prometheus"))
        with running_prometheus(directory, scrape_configs=[exporter.scrape_config()]) as server:
            server.wait_for_samples("queue_depth", 2)
            yield server


def test_the_editor_previews_on_real_prometheus_with_only_the_tenants_series(
    prometheus, settings, client_for, acme
):
    settings.PROMETHEUS_URL = prometheus.url
    from tests.test_alert_pages import make_group, rule_post

    group = make_group(acme, interval="5s")
    response = client_for("acme", "operator").post(
        "/alerts/rules/new/",
        rule_post(group, expr="queue_depth > 100", for_duration="", action="preview"),
    )
    assert response.status_code == 200
    html = response.content.decode()
    block = re.search(
        r'<script id="rule-preview-data" type="application/json">(.*?)</script>', html
    )
    assert block, html[html.find('id="preview"') :][:2000]
    chart = json.loads(block.group(1))
    (only,) = chart["series"]
    assert only["name"].startswith("queue_depth{") and 'queue="emails"' in only["name"]
    assert "tenant" not in only["name"]
    assert all(v == 250 for v in chart["series"][0]["y"])  # never globex's 999
    assert chart["threshold"] == 100
    assert chart["firing"], "the rule fires on acme's 250"
    assert 'id="blast-radius"' in html
    with tenant_context(acme):
        from alerts.models import AlertRule

        assert not AlertRule.objects.filter(group=group).exists()


def test_suggestions_come_from_the_tenants_own_series(prometheus, settings):
    settings.PROMETHEUS_URL = prometheus.url

    def names():
        found = queries.metric_names("acme")
        return found if "queue_depth" in found else None

    found = wait_for(names, timeout=20, message="acme's metric names")
    assert "globex_only_metric" not in found
    assert "globex_only_metric" in queries.metric_names("globex")
    assert "queue" in queries.label_names("acme")
    assert "tenant" not in queries.label_names("acme")
