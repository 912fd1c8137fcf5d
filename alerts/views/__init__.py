"""Alerting pages, one module per screen: rules (and groups), receivers, the notification policy,
silences, rule files, incidents."""
