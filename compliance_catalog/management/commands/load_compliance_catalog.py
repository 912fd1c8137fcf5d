"""Load the compliance catalog files into the public schema (idempotent)."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django_tenants.utils import schema_context

from compliance_catalog.loader import DATA_DIR, CatalogError, load_catalog


class Command(BaseCommand):
    help = "Load compliance_catalog/data/*.yaml into the catalog tables; unchanged files: no-op."

    def add_arguments(self, parser):
        parser.add_argument("--force", action="store_true", help="Reload even if unchanged.")
        parser.add_argument(
            "--data-dir", type=Path, default=DATA_DIR, help="Catalog files (default: the app's)."
        )

    def handle(self, *args, **options):
        try:
            with schema_context("public"):
                outcome = load_catalog(options["data_dir"], force=options["force"])
        except CatalogError as exc:
            raise CommandError(f"catalog not loaded: {exc}") from None
        self.stdout.write(
            f"Catalog {outcome.status} ({outcome.digest[:12]}): {outcome.frameworks} frameworks, "
            f"{outcome.requirements} requirements, {outcome.controls} controls."
        )
