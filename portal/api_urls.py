"""/api/v1/: each app contributes a router; the index lists them; anything else is a JSON 404."""

from django.urls import path, re_path

from alerts.api.urls import router as alerts_router
from dashboards.api.catalog import router as metric_catalog_router
from dashboards.api.ingest import MetricIngestView
from dashboards.api.urls import router as dashboards_router
from tenants.api.index import ApiIndexView, api_not_found
from tenants.api.urls import router as tenants_router

ROUTERS = [tenants_router, dashboards_router, metric_catalog_router, alerts_router]

urlpatterns = [
    path("", ApiIndexView.as_view(routers=ROUTERS), name="api-index"),
    *(pattern for router in ROUTERS for pattern in router.urls),
    path("metrics", MetricIngestView.as_view(), name="metrics-ingest"),
    re_path(r"", api_not_found, name="api-not-found"),
]
