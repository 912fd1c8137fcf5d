"""The audit actions of the compliance app."""

from __future__ import annotations

from enum import StrEnum

from tenants import audit


@audit.register_actions
class AuditAction(StrEnum):
    """What `compliance` records; the values are what the trail stores and filters on."""

    STATUS_CHANGED = "compliance.status_changed"
    ATTESTED = "compliance.attested"
    ATTESTATION_EXPIRED = "compliance.attestation_expired"
    OWNER_CHANGED = "compliance.owner_changed"
    EVIDENCE_ADDED = "compliance.evidence_added"
    EVIDENCE_REMOVED = "compliance.evidence_removed"
