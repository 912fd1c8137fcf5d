"""What every alerting page shares: the edit guard, the actor, and sync state in words."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.core.exceptions import PermissionDenied, ValidationError

from alerts.models import SyncState
from tenants import audit
from tenants.access import request_access
from tenants.roles import Perm

Target = SyncState.Target
Status = SyncState.Status
SEVERITY_BADGES = {"P0": "badge-bad", "P1": "badge-warn", "P2": "badge-info", "P3": "badge-muted"}


def require_edit(request) -> None:
    """403 unless the member may change alerting (pages check VIEW_ALERTS first)."""
    if not request_access(request).can(Perm.EDIT_ALERTS):
        raise PermissionDenied(f"Your role does not allow this ({Perm.EDIT_ALERTS}).")


def actor(request) -> audit.Actor:
    return audit.Actor.from_request(request)


@dataclass(frozen=True)
class SyncView:
    """A backend target's state as a page shows it: a badge, words, the backend's error."""

    target: str
    label: str
    status: str  # synced | pending | failed
    error: str
    last_attempt_at: datetime | None
    last_success_at: datetime | None

    @property
    def badge(self) -> str:
        return {"synced": "badge-ok", "pending": "badge-warn", "failed": "badge-bad"}[self.status]


def sync_view(target: str) -> SyncView:
    state = SyncState.objects.filter(target=target).first()
    label = Target(target).label
    if state is None:
        return SyncView(target, label, Status.PENDING, "Not synced yet.", None, None)
    return SyncView(
        target,
        label,
        state.status,
        state.error,
        state.last_attempt_at,
        state.last_success_at,
    )


def item_sync(state: SyncView, changed_at: datetime | None) -> tuple[str, str]:
    """(status, error) of one object changed at `changed_at` under a target's state: what the
    backend applied last includes it when that success came after the change."""
    if state.status == Status.SYNCED:
        return Status.SYNCED, ""
    if changed_at is not None and state.last_success_at and changed_at <= state.last_success_at:
        return Status.SYNCED, ""
    return state.status, state.error


def add_service_errors(form, exc: ValidationError) -> None:
    """A service's refusal on a form: under the field it names, else above the form."""
    if not hasattr(exc, "error_dict"):
        form.add_error(None, exc.messages)
        return
    for name, errors in exc.message_dict.items():
        form.add_error(name if name in form.fields else None, errors)
