"""WebSocket routes. Every consumer here runs with `scope["tenant"]` set."""

from django.urls import path

from tenants.realtime.consumers import PresenceConsumer

websocket_urlpatterns = [
    path("ws/presence/", PresenceConsumer.as_asgi()),
]
