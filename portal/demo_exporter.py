"""A demo exporter: realistic series for each demo tenant, and the demo rules that watch them.

`python -m portal.demo_exporter --port 9105` serves `/metrics` (Prometheus text format) with, per
tenant: request rate and errors by route, a latency histogram, failed sign-ins and queue depth.
Values move every second. Every few minutes one tenant has a bad spell (errors on one route, a
burst of failed sign-ins, a queue that backs up), so the demo rules fire now and then and resolve
again. Every series carries the `tenant` label; Prometheus scrapes it with `honor_labels: true`.
"""

from __future__ import annotations

import argparse
import math
import random
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ROUTES = ("/", "/login", "/api/orders", "/api/search", "/checkout")
BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
QUEUES = ("emails", "reports")
# Each bad spell lasts this long, and one starts every CYCLE seconds (tenants take turns).
SPELL_SECONDS = 150
CYCLE_SECONDS = 420


@dataclass
class TenantTraffic:
    """The counters of one tenant, advanced a second at a time."""

    tenant: str
    scale: float  # requests per second at peak, roughly
    requests: dict[tuple[str, str, str], float] = field(default_factory=dict)
    latency_buckets: dict[tuple[str, float], float] = field(default_factory=dict)
    latency_sum: dict[str, float] = field(default_factory=dict)
    latency_count: dict[str, float] = field(default_factory=dict)
    failed_sign_ins: float = 0.0
    queue_depth: dict[str, float] = field(default_factory=dict)

    def advance(self, now: float, rng: random.Random, spell: str | None) -> None:
        # A daily-looking wave, compressed to ten minutes so the demo shows movement.
        wave = 0.6 + 0.4 * math.sin(now / 600 * 2 * math.pi)
        for route in ROUTES:
            rate = self.scale * wave * (1.5 if route == "/api/search" else 1.0)
            count = max(0, int(rng.gauss(rate, rate * 0.1)))
            error_share = 0.01
            if spell == "errors" and route == "/checkout":
                error_share = 0.35
            errors = sum(1 for _ in range(count) if rng.random() < error_share)
            self._add_requests(route, "GET" if route != "/checkout" else "POST", count, errors)
            slow = spell == "errors" and route == "/checkout"
            for _ in range(min(count, 200)):
                self._observe(route, rng.lognormvariate(math.log(0.9 if slow else 0.08), 0.6))
        sign_in_failures = rng.choice((0, 0, 0, 1))
        if spell == "sign-ins":
            sign_in_failures += rng.randint(2, 5)
        self.failed_sign_ins += sign_in_failures
        for queue in QUEUES:
            depth = self.queue_depth.get(queue, 5.0)
            if spell == "queue" and queue == "emails":
                depth += rng.uniform(1, 4)
            else:
                depth = max(0.0, depth + rng.uniform(-3, 3) - (depth - 8) * 0.1)
            self.queue_depth[queue] = round(depth)

    def _add_requests(self, route: str, method: str, count: int, errors: int) -> None:
        for code, n in (("200", count - errors), ("500", errors)):
            key = (route, method, code)
            self.requests[key] = self.requests.get(key, 0.0) + n

    def _observe(self, route: str, seconds: float) -> None:
        # Buckets are cumulative, as the text format wants: each counts everything below it.
        for bound in BUCKETS:
            if seconds <= bound:
                key = (route, bound)
                self.latency_buckets[key] = self.latency_buckets.get(key, 0.0) + 1
        self.latency_sum[route] = self.latency_sum.get(route, 0.0) + seconds
        self.latency_count[route] = self.latency_count.get(route, 0.0) + 1

    def exposition(self) -> list[str]:
        t = self.tenant
        lines = []
        for (route, method, code), value in sorted(self.requests.items()):
            lines.append(
                f'http_requests_total{{tenant="{t}",route="{route}",method="{method}",'
                f'code="{code}"}} {value:.0f}'
            )
        for route in ROUTES:
            for bound in BUCKETS:
                count = self.latency_buckets.get((route, bound), 0.0)
                lines.append(
                    f'http_request_duration_seconds_bucket{{tenant="{t}",route="{route}",'
                    f'le="{bound}"}} {count:.0f}'
                )
            total = self.latency_count.get(route, 0.0)
            lines.append(
                f'http_request_duration_seconds_bucket{{tenant="{t}",route="{route}",le="+Inf"}} '
                f"{total:.0f}"
            )
            lines.append(
                f'http_request_duration_seconds_sum{{tenant="{t}",route="{route}"}} '
                f"{self.latency_sum.get(route, 0.0):.3f}"
            )
            lines.append(
                f'http_request_duration_seconds_count{{tenant="{t}",route="{route}"}} {total:.0f}'
            )
        lines.append(f'auth_failed_sign_ins_total{{tenant="{t}"}} {self.failed_sign_ins:.0f}')
        for queue, depth in sorted(self.queue_depth.items()):
            lines.append(f'job_queue_depth{{tenant="{t}",queue="{queue}"}} {depth:.0f}')
        return lines


HELP = """# HELP http_requests_total Requests served, by route, method and status code.
# TYPE http_requests_total counter
# HELP http_request_duration_seconds Time to serve a request.
# TYPE http_request_duration_seconds histogram
# HELP auth_failed_sign_ins_total Sign-in attempts that failed.
# TYPE auth_failed_sign_ins_total counter
# HELP job_queue_depth Jobs waiting in a background queue.
# TYPE job_queue_depth gauge
"""
SPELLS = ("errors", "sign-ins", "queue")


class DemoTraffic:
    """Every demo tenant's traffic, advanced once a second by a background thread."""

    def __init__(self, tenants: dict[str, float], seed: int | None = None) -> None:
        self._rng = random.Random(seed)  # noqa: S311 (demo data, not a secret)
        self._lock = threading.Lock()
        self._tenants = [TenantTraffic(name, scale) for name, scale in tenants.items()]
        self._stop = threading.Event()

    def spell_at(self, now: float) -> tuple[str, str] | None:
        """(tenant, kind of bad spell) at `now`, or None while everything is fine."""
        cycle, offset = divmod(int(now), CYCLE_SECONDS)
        if offset >= SPELL_SECONDS:
            return None
        tenant = self._tenants[cycle % len(self._tenants)].tenant
        return tenant, SPELLS[cycle % len(SPELLS)]

    def tick(self, now: float) -> None:
        spell = self.spell_at(now)
        with self._lock:
            for traffic in self._tenants:
                kind = spell[1] if spell and spell[0] == traffic.tenant else None
                traffic.advance(now, self._rng, kind)

    def exposition(self) -> str:
        with self._lock:
            lines = [line for t in self._tenants for line in t.exposition()]
        return HELP + "\n".join(lines) + "\n"

    def run(self) -> None:
        while not self._stop.wait(1.0):
            self.tick(time.time())

    def stop(self) -> None:
        self._stop.set()


def serve(traffic: DemoTraffic, host: str, port: int) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (the name http.server calls)
            if self.path.split("?")[0] != "/metrics":
                self.send_error(404)
                return
            body = traffic.exposition().encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass  # one scrape every few seconds would drown the demo's output

    return ThreadingHTTPServer((host, port), Handler)


# Rules the demo seed gives each tenant: they watch the series above and fire during bad spells.
DEMO_RULE_GROUP = ("Demo service health", "30s")
DEMO_RULES = (
    {
        "kind": "alert",
        "name": "CheckoutErrorRateHigh",
        "expr": (
            'sum(rate(http_requests_total{route="/checkout",code=~"5.."}[1m]))'
            ' / sum(rate(http_requests_total{route="/checkout"}[1m])) > 0.1'
        ),
        "for_duration": "1m",
        "keep_firing_for": "",
        "severity": "P1",
        "category": "availability",
        "labels": {"team": "shop"},
        "annotations": {
            "summary": "More than 10% of checkouts fail",
            "description": "Checkout has answered with 5xx for over a minute.",
        },
        "enabled": True,
    },
    {
        "kind": "alert",
        "name": "CheckoutSlow",
        "expr": (
            "histogram_quantile(0.95, sum by (le) "
            '(rate(http_request_duration_seconds_bucket{route="/checkout"}[2m]))) > 0.5'
        ),
        "for_duration": "2m",
        "keep_firing_for": "",
        "severity": "P2",
        "category": "performance",
        "labels": {"team": "shop"},
        "annotations": {"summary": "Checkout p95 latency is above 500 ms"},
        "enabled": True,
    },
    {
        "kind": "alert",
        "name": "FailedSignInBurst",
        "expr": "sum(increase(auth_failed_sign_ins_total[2m])) > 100",
        "for_duration": "",
        "keep_firing_for": "2m",
        "severity": "P1",
        "category": "security",
        "labels": {},
        "annotations": {"summary": "Many failed sign-ins in the last two minutes"},
        "enabled": True,
    },
    {
        "kind": "alert",
        "name": "EmailQueueBacklog",
        "expr": 'max(job_queue_depth{queue="emails"}) > 100',
        "for_duration": "1m",
        "keep_firing_for": "",
        "severity": "P3",
        "category": "business",
        "labels": {},
        "annotations": {"summary": "More than 100 e-mails are waiting to be sent"},
        "enabled": True,
    },
    {
        "kind": "record",
        "name": "route:http_requests:rate1m",
        "expr": "sum by (route) (rate(http_requests_total[1m]))",
        "for_duration": "",
        "keep_firing_for": "",
        "severity": "P3",
        "category": "performance",
        "labels": {},
        "annotations": {},
        "enabled": True,
    },
)


def ensure_demo_rules(actor) -> int:
    """Create the demo rule group and its rules in the current tenant if missing; returns how
    many rules were added. Through the alerting services, so audited and synced like any save."""
    from alerts import services
    from alerts.models import AlertRule, RuleGroup

    name, interval = DEMO_RULE_GROUP
    group = RuleGroup.objects.filter(name=name).first()
    if group is None:
        group = services.create_group(name=name, interval=interval, actor=actor)
    added = 0
    for rule in DEMO_RULES:
        if not AlertRule.objects.filter(group=group, name=rule["name"]).exists():
            services.create_rule(group_id=group.public_id, actor=actor, **rule)
            added += 1
    return added


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9105)
    parser.add_argument(
        "--tenant",
        action="append",
        metavar="SLUG",
        help="a tenant to serve series for (repeatable; default: the demo tenants)",
    )
    args = parser.parse_args(argv)
    tenants = args.tenant or ["acme", "globex"]
    # Different sizes, so the tenants' dashboards do not look alike.
    traffic = DemoTraffic({t: 20.0 * (i + 1) for i, t in enumerate(tenants)})
    traffic.tick(time.time())
    threading.Thread(target=traffic.run, name="demo-traffic", daemon=True).start()
    server = serve(traffic, args.host, args.port)
    print(f"demo exporter on http://{args.host}:{args.port}/metrics", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        traffic.stop()
        server.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
