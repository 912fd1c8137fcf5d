"""ASGI entry point: HTTP through Django, WebSockets through Channels with the tenant resolved."""

import gc
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
django_asgi_app = get_asgi_application()

from portal.checks import refuse_unsafe_production_start  # noqa: E402

refuse_unsafe_production_start()

from channels.auth import AuthMiddlewareStack  # noqa: E402  (needs the app registry)
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from portal.routing import websocket_urlpatterns  # noqa: E402
from tenants.realtime.middleware import TenantFromHostMiddleware  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        # The tenant middleware checks the host and the Origin and refuses before anything
        # else runs (it replaces channels' AllowedHostsOriginValidator, whose refusals lingered).
        "websocket": TenantFromHostMiddleware(
            AuthMiddlewareStack(URLRouter(websocket_urlpatterns))
        ),
    }
)

# What is loaded by now (Django, the apps, their modules) lives as long as the process: moved
# out of the collector's reach, full collections no longer walk it (they took 90-300 ms).
gc.freeze()
