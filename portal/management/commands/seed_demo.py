"""Load the demo tenants and users (refused in production)."""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from portal.demo import DEMO_PASSWORD, seed_demo


class Command(BaseCommand):
    help = "Create the demo tenants acme and globex and their users (idempotent)."

    def handle(self, *args, **options):
        if settings.PRODUCTION:
            raise CommandError("The demo data is not for production (MONITORING_LEVEL=production).")
        logins = seed_demo(with_rules=True)
        self.stdout.write(self.style.SUCCESS(f"Demo data ready; password for all: {DEMO_PASSWORD}"))
        for login in logins:
            self.stdout.write(f"  {login}")
