"""Routes of the tenants app's API resources (mounted under /api/v1/ by portal.api_urls).

Route names start with `api-`: pages have names like `member-remove` too, and a shared name
would make `{% url %}` pick whichever pattern comes last.
"""

from rest_framework.routers import SimpleRouter

from tenants.api import views

router = SimpleRouter()
router.register("members", views.MemberViewSet, basename="api-member")
router.register("tokens", views.TokenViewSet, basename="api-token")
router.register("audit-events", views.AuditEventViewSet, basename="api-audit-event")
urlpatterns = router.urls
