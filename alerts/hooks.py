"""Alertmanager's calls into the portal: the alert intake and the relay for Teams and SMS.

Open to Alertmanager without a session: each request names the tenant by its public id in the
path and proves itself with that tenant's intake secret (bearer), compared in constant time.
"""

from __future__ import annotations

import hmac

from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from django_tenants.utils import tenant_context

from alerts.intake import PayloadError, parse_notification, summarise
from alerts.models import AlertingSettings, Receiver
from portal.tasks import queue

RELAYED_KINDS = (Receiver.Kind.MSTEAMS, Receiver.Kind.SMS)


def _tenant(tenant_id):
    from tenants.models import Tenant

    return Tenant.objects.filter(public_id=tenant_id, is_active=True).first()


def _authorised(request) -> bool:
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    intake = AlertingSettings.objects.first()
    if scheme.lower() != "bearer" or not given or intake is None or not intake.webhook_secret:
        return False
    return hmac.compare_digest(given.encode(), intake.webhook_secret.encode())


def _refused(status: int, detail: str) -> JsonResponse:
    return JsonResponse({"detail": detail}, status=status)


def _checked(request, tenant_id, handle):
    tenant = _tenant(tenant_id)
    if tenant is None:
        return _refused(404, "No such alert intake.")
    with tenant_context(tenant):
        if not _authorised(request):
            return _refused(401, "A valid bearer credential for this intake is required.")
        try:
            notification = parse_notification(request.body, schema=tenant.schema_name)
        except PayloadError as exc:
            return _refused(400, str(exc))
        return handle(tenant, notification)


@csrf_exempt
@require_POST
def alert_intake(request, tenant_id):
    """Every alert of the tenant becomes (or updates) an incident before the answer goes back:
    a 2xx means the alerts are recorded, so Alertmanager retries anything it did not get."""
    from alerts.incident_intake import apply_notification

    def accept(tenant, notification):
        result = apply_notification(notification)
        return JsonResponse(
            {
                "accepted": len(notification.alerts),
                "opened": len(result.opened),
                "resolved": len(result.resolved),
                "unchanged": result.unchanged,
            },
            status=202,
        )

    return _checked(request, tenant_id, accept)


@csrf_exempt
@require_POST
def relay(request, tenant_id, receiver_id):
    """Send on to a provider Alertmanager cannot reach itself; the send happens in Celery."""
    from alerts.tasks import deliver_relayed_notification

    def enqueue(tenant, notification):
        receiver = Receiver.objects.filter(public_id=receiver_id, kind__in=RELAYED_KINDS).first()
        if receiver is None:
            return _refused(404, "No such relayed receiver in this tenant.")
        title, text, severity = summarise(notification)
        queued = queue(
            deliver_relayed_notification,
            str(receiver.public_id),
            title,
            text,
            severity,
            notification.status,
            notification.group_key or "alertmanager",
            [[a.fingerprint, a.starts_at.isoformat()] for a in notification.alerts],
            what=f"a relayed notification of {tenant.schema_name}",
        )
        if not queued:
            # Not taken: Alertmanager retries the notification, and the relay then queues it.
            return _refused(503, "The relay queue is unreachable; retry later.")
        return JsonResponse({"queued": str(receiver.public_id)}, status=202)

    return _checked(request, tenant_id, enqueue)
