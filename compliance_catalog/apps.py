from django.apps import AppConfig


class ComplianceCatalogConfig(AppConfig):
    name = "compliance_catalog"
    verbose_name = "Compliance catalog"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from compliance_catalog.loader import load_after_migrate

        post_migrate.connect(load_after_migrate, sender=self, dispatch_uid="compliance_catalog")
