"""Load the demo tenants and users (refused in production)."""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django_tenants.utils import tenant_context

from portal.demo import DEMO_PASSWORD, DEMO_TENANTS, seed_demo
from portal.demo_exporter import ensure_demo_rules
from tenants import audit
from tenants.models import Tenant


class Command(BaseCommand):
    help = "Create the demo tenants acme and globex and their users (idempotent)."

    def handle(self, *args, **options):
        if settings.PRODUCTION:
            raise CommandError("The demo data is not for production (MONITORING_LEVEL=production).")
        logins = seed_demo()
        # The demo's alert rules, which its exporter makes fire now and then. Only here: the
        # test seed (portal.demo.seed_demo) keeps tenants without rules.
        actor = audit.Actor.system("demo seed")
        for tenant in Tenant.objects.filter(schema_name__in=DEMO_TENANTS):
            with tenant_context(tenant):
                ensure_demo_rules(actor)
        self.stdout.write(self.style.SUCCESS(f"Demo data ready; password for all: {DEMO_PASSWORD}"))
        for login in logins:
            self.stdout.write(f"  {login}")
