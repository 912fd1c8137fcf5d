from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class TenantsConfig(AppConfig):
    name = "tenants"
    verbose_name = "Tenants and access"
    default = True


class PlatformAdminConfig(admin_apps.AdminConfig):
    """django.contrib.admin, with the platform's own admin site as the default site."""

    default = False  # this module's default config is TenantsConfig
    default_site = "tenants.admin_site.PlatformAdminSite"
