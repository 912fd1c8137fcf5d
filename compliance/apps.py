from django.apps import AppConfig


class ComplianceConfig(AppConfig):
    name = "compliance"
    verbose_name = "Compliance"

    def ready(self) -> None:
        from compliance.owners import release_owner
        from compliance.services import latest_chain_verification
        from tenants import audit_chain, lifecycle

        lifecycle.member_removed.connect(release_owner, dispatch_uid="compliance.release_owner")
        audit_chain.set_verification_reader(latest_chain_verification)
