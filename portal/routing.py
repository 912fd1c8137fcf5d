"""WebSocket routes. Every consumer here runs with `scope["tenant"]` set."""

from django.urls import path, re_path

from alerts.routing import websocket_urlpatterns as incident_sockets
from dashboards.routing import websocket_urlpatterns as dashboard_sockets
from tenants.realtime.consumers import PresenceConsumer
from tenants.realtime.refusal import refuse

websocket_urlpatterns = [
    path("ws/presence/", PresenceConsumer.as_asgi()),
    *dashboard_sockets,
    *incident_sockets,
    # Any other path is refused at once (channels would raise, and the server log a 500).
    re_path(r"", refuse),
]
