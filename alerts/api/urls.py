"""Routes of the alerting API (mounted under /api/v1/ by portal.api_urls)."""

from rest_framework.routers import SimpleRouter

from alerts.api import incidents, views

router = SimpleRouter()
router.register("alert-rules", views.AlertRuleViewSet, basename="alert-rule")
router.register("rule-groups", views.RuleGroupViewSet, basename="rule-group")
router.register("receivers", views.ReceiverViewSet, basename="receiver")
router.register(
    "notification-policies", views.NotificationPolicyViewSet, basename="notification-policy"
)
router.register("silences", views.SilenceViewSet, basename="silence")
router.register("rule-file", views.RuleFileViewSet, basename="rule-file")
# "api-": the incident pages are named `incident`, `incident-action`...
router.register("incidents", incidents.IncidentViewSet, basename="api-incident")
urlpatterns = router.urls
