"""Routes of the dashboards API (mounted under /api/v1/ by portal.api_urls)."""

from rest_framework.routers import SimpleRouter

from dashboards.api.views import DashboardViewSet

router = SimpleRouter()
router.register("dashboards", DashboardViewSet, basename="api-dashboard")
urlpatterns = router.urls
