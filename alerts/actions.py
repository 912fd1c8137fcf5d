"""The audit actions of the alerts app: rules, receivers, policy, silences, intake, incidents."""

from __future__ import annotations

from enum import StrEnum

from tenants import audit


@audit.register_actions
class AuditAction(StrEnum):
    """What `alerts` records; the values are what the trail stores and filters on."""

    ALERT_GROUP_CREATED = "alert_group.created"
    ALERT_GROUP_UPDATED = "alert_group.updated"
    ALERT_GROUP_DELETED = "alert_group.deleted"
    ALERT_RULE_CREATED = "alert_rule.created"
    ALERT_RULE_UPDATED = "alert_rule.updated"
    ALERT_RULE_DELETED = "alert_rule.deleted"
    RECEIVER_CREATED = "receiver.created"
    RECEIVER_UPDATED = "receiver.updated"
    RECEIVER_DELETED = "receiver.deleted"
    POLICY_UPDATED = "policy.updated"
    POLICY_DEFAULTS_CREATED = "policy.defaults_created"
    MUTE_TIMING_SAVED = "mute_timing.saved"
    MUTE_TIMING_DELETED = "mute_timing.deleted"
    SILENCE_CREATED = "silence.created"
    SILENCE_EXPIRED = "silence.expired"
    ALERT_INTAKE_SECRET_ROTATED = "alert_intake.secret_rotated"
    ACK_TARGETS_UPDATED = "incident.ack_targets_updated"
    INCIDENT_INTAKE = "incident.intake"
    INCIDENT_RAISED = "incident.raised"
    INCIDENT_ACKNOWLEDGED = "incident.acknowledged"
    INCIDENT_ASSIGNED = "incident.assigned"
    INCIDENT_NOTE_ADDED = "incident.note_added"
    INCIDENT_SILENCED = "incident.silenced"
    INCIDENT_RESOLVED = "incident.resolved"
    INCIDENT_REOPENED = "incident.reopened"
    INCIDENT_BREACH_FLAGGED = "incident.breach_flagged"
    INCIDENT_BREACH_NOTICE = "incident.breach_notice_recorded"
    INCIDENT_DIGEST_SENT = "incident.digest_sent"
