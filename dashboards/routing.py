"""WebSocket routes of the dashboards app (included by `portal.routing`)."""

from django.urls import path

from dashboards.consumers import DashboardConsumer

websocket_urlpatterns = [
    path("ws/dashboards/<uuid:dashboard_id>/", DashboardConsumer.as_asgi()),
]
