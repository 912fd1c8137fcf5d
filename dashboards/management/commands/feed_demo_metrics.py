"""Feed the demo tenants' default dashboards: 30 days of history, then live samples pushed
through the public ingest API, as an application would."""

from __future__ import annotations

import random
import time
from datetime import timedelta

import httpx
from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import connection
from django.utils import timezone
from django_tenants.utils import tenant_context

from dashboards import demo_feed, portal_kpis
from dashboards.defaults import create_default_catalog
from portal.demo import DEMO_TENANTS
from tenants import audit, services
from tenants.models import Tenant

TOKEN_NAME = "demo metric feed"


class Command(BaseCommand):
    help = "Backfill and then continuously push demo metrics to the demo tenants."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--port", default="8000", help="Port of the portal's web server.")
        parser.add_argument("--interval", type=float, default=10.0, help="Seconds between pushes.")
        parser.add_argument("--history-days", type=int, default=30)
        parser.add_argument("--history-step", type=int, default=60, help="Seconds per sample.")
        parser.add_argument("--once", action="store_true", help="Backfill and push one batch.")

    def handle(
        self,
        *args,
        port: str,
        interval: float,
        history_days: int,
        history_step: int,
        once: bool,
        **options,
    ) -> None:
        actor = audit.Actor.system("demo metric feed")
        secrets = {}
        for slug in DEMO_TENANTS:
            tenant = Tenant.objects.get(schema_name=slug)
            with tenant_context(tenant):
                create_default_catalog(actor)
                written = demo_feed.backfill(
                    slug,
                    days=history_days,
                    step=timedelta(seconds=history_step),
                    now=timezone.now(),
                )
                # The tenant's real open incidents and compliance figures, now (then every
                # minute from beat): those panels are not demo data.
                portal_kpis.record()
            connection.set_schema_to_public()
            self.stdout.write(f"{slug}: {written} samples of history")
            issued = services.create_token(
                tenant=tenant,
                name=TOKEN_NAME,
                scopes=["ingest"],
                actor=actor,
                expires_at=timezone.now() + timedelta(days=1),
            )
            secrets[slug] = issued.secret
        rng = random.Random()  # noqa: S311 (demo data, not a secret)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            while True:
                now = timezone.now()
                for slug, secret in secrets.items():
                    self._push(client, slug, secret, demo_feed.current_batch(slug, now, rng))
                if once:
                    return
                time.sleep(interval)

    def _push(self, client: httpx.Client, slug: str, secret: str, batch: list[dict]) -> None:
        host = f"{slug}.{settings.PORTAL_BASE_DOMAIN}"
        try:
            response = client.post(
                "/api/v1/metrics",
                json={"samples": batch},
                headers={"Host": host, "Authorization": f"Bearer {secret}"},
            )
        except httpx.HTTPError as exc:
            # The web server may still be starting, or restarting: the next round tries again.
            self.stderr.write(f"{slug}: not pushed ({exc})")
            return
        if response.status_code != 202:
            self.stderr.write(f"{slug}: {response.status_code} {response.text[:500]}")
