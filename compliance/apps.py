from django.apps import AppConfig


def assess_new_tenant(sender, *, tenant, **kwargs) -> None:
    """Receiver of `tenant_provisioned` (runs in the new tenant's schema): its first assessment
    now, so its compliance pages and score say something before beat's next hour. Without a
    queue, that hourly assessment is the first."""
    from compliance import tasks
    from portal.tasks import queue

    queue(tasks.assess_tenant, what=f"the first assessment of {tenant.schema_name}")


class ComplianceConfig(AppConfig):
    name = "compliance"
    verbose_name = "Compliance"

    def ready(self) -> None:
        from compliance.owners import release_owner
        from compliance.services import latest_chain_verification
        from tenants import audit_chain, lifecycle

        lifecycle.member_removed.connect(release_owner, dispatch_uid="compliance.release_owner")
        lifecycle.tenant_provisioned.connect(
            assess_new_tenant, dispatch_uid="compliance.assess_new_tenant"
        )
        audit_chain.set_verification_reader(latest_chain_verification)
