from django.apps import AppConfig


class DashboardsConfig(AppConfig):
    name = "dashboards"
    verbose_name = "Dashboards"

    def ready(self) -> None:
        from dashboards.defaults import create_default_dashboards
        from tenants import lifecycle

        lifecycle.tenant_provisioned.connect(
            create_default_dashboards, dispatch_uid="dashboards.create_default_dashboards"
        )
