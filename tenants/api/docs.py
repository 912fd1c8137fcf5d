"""OpenAPI schema and interactive docs, open to every member (and read tokens) of the tenant."""

from csp.decorators import csp_update
from django.utils.decorators import method_decorator
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from tenants.roles import Perm


class TenantSchemaView(SpectacularAPIView):
    action_permissions = {"get": Perm.VIEW_TENANT}


# Swagger UI injects <style> elements at run time; inline scripts stay forbidden.
@method_decorator(csp_update({"style-src": ["'unsafe-inline'"]}), name="dispatch")
class TenantDocsView(SpectacularSwaggerSplitView):
    """The browsable API: Swagger UI on the schema (DRF's own HTML pages are never served)."""

    action_permissions = {"get": Perm.VIEW_TENANT}
