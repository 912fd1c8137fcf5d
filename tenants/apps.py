from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class TenantsConfig(AppConfig):
    name = "tenants"
    verbose_name = "Tenants and access"
    default = True

    def ready(self) -> None:
        # Subscribers to sign-in events and lifecycle hooks: connected once, here, so nothing is
        # wired up by the side effect of an import somewhere else.
        from tenants.accounts import signin_audit, users
        from tenants.realtime import revocation

        signin_audit.connect()
        users.connect()
        revocation.connect()


class PlatformAdminConfig(admin_apps.AdminConfig):
    """django.contrib.admin, with the platform's own admin site as the default site."""

    default = False  # this module's default config is TenantsConfig
    default_site = "tenants.admin_site.PlatformAdminSite"
