"""WebSocket routes of the alerts app (included by `portal.routing`)."""

from django.urls import path

from alerts.consumers import IncidentDeskConsumer

websocket_urlpatterns = [
    path("ws/incidents/", IncidentDeskConsumer.as_asgi()),
]
