from django.apps import AppConfig


class ComplianceConfig(AppConfig):
    name = "compliance"
    verbose_name = "Compliance"

    def ready(self) -> None:
        from compliance.owners import release_owner
        from tenants import lifecycle

        lifecycle.member_removed.connect(release_owner, dispatch_uid="compliance.release_owner")
