"""OpenAPI schema and interactive docs, open to every member (and read tokens) of the tenant."""

from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from tenants.roles import Perm


class TenantSchemaView(SpectacularAPIView):
    read_perm = Perm.VIEW_TENANT


class TenantDocsView(SpectacularSwaggerSplitView):
    read_perm = Perm.VIEW_TENANT
