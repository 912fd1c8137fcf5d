"""Create a tenant from the command line: `manage.py provision_tenant acme --name "Acme"`."""

import time

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from tenants import audit
from tenants.provisioning import provision_tenant, tenant_host


class Command(BaseCommand):
    help = "Provision a tenant by cloning the template schema."

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("--name", required=True)
        parser.add_argument("--admin-email", default=None)

    def handle(self, *args, slug, name, admin_email, **options):
        started = time.perf_counter()
        try:
            tenant = provision_tenant(
                slug=slug,
                name=name,
                admin_email=admin_email,
                actor=audit.Actor.system("manage.py provision_tenant"),
            )
        except ValidationError as exc:
            reasons = "; ".join(
                f"{field}: {' '.join(msgs)}" for field, msgs in exc.message_dict.items()
            )
            raise CommandError(reasons) from None
        elapsed = (time.perf_counter() - started) * 1000
        self.stdout.write(
            self.style.SUCCESS(
                f"Tenant '{tenant.slug}' ready at {tenant_host(slug)} ({elapsed:.0f} ms)."
            )
        )
