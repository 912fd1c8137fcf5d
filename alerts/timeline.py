"""An incident's timeline: append-only entries, each chained to the one before by its hash.

The database refuses UPDATE and DELETE on entries (a trigger); the hash chain makes any change
made around that (a restore from an edited dump) visible: `verify` recomputes it. Entries are
written only here, always inside the transaction that changed the incident.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime

from django.core.serializers.json import DjangoJSONEncoder

from alerts.models import Incident, IncidentEvent

GENESIS = "0" * 64


def _digest(
    incident_id: str, previous: str, kind: str, at: datetime, actor: str, text: str, detail: dict
) -> str:
    body = json.dumps(
        [incident_id, previous, kind, at.isoformat(), actor, text, detail],
        cls=DjangoJSONEncoder,
        sort_keys=True,
        ensure_ascii=False,
    )
    return hashlib.sha256(body.encode()).hexdigest()


def entry(
    incident: Incident,
    kind: str,
    *,
    at: datetime,
    actor: str,
    text: str = "",
    detail: dict | None = None,
) -> IncidentEvent:
    """An unsaved entry chained to the incident's head; the head moves to it.

    The caller saves both (entries in bulk, the incident with `timeline_head`), in one
    transaction, holding the incident's row lock.
    """
    detail = json.loads(json.dumps(detail or {}, cls=DjangoJSONEncoder))
    previous = incident.timeline_head or GENESIS
    digest = _digest(str(incident.public_id), previous, kind, at, actor, text, detail)
    incident.timeline_head = digest
    return IncidentEvent(
        incident=incident,
        kind=kind,
        at=at,
        actor=actor[:254],
        text=text,
        detail=detail,
        previous_hash=previous,
        hash=digest,
    )


@dataclass(frozen=True)
class Verification:
    intact: bool
    entries: int
    broken_at: int | None = None  # index of the first entry that does not chain


def verify(incident: Incident) -> Verification:
    """Recompute the chain from the first entry to the incident's head."""
    previous = GENESIS
    events = list(incident.events.order_by("id"))
    for index, event in enumerate(events):
        expected = _digest(
            str(incident.public_id),
            previous,
            event.kind,
            event.at,
            event.actor,
            event.text,
            event.detail,
        )
        if event.previous_hash != previous or event.hash != expected:
            return Verification(False, len(events), index)
        previous = event.hash
    if previous != (incident.timeline_head or GENESIS):
        return Verification(False, len(events), len(events))
    return Verification(True, len(events))
