from django.urls import path

from alerts.views import incident_detail, incidents, policy, receivers, rulefiles, rules, silences

urlpatterns = [
    path("alerts/rules/", rules.rule_list, name="alert-rules"),
    path("alerts/rules/new/", rules.rule_create, name="alert-rule-new"),
    path("alerts/rules/check/", rules.rule_check, name="alert-rule-check"),
    path("alerts/rules/<uuid:rule_id>/", rules.rule_edit, name="alert-rule"),
    path("alerts/rules/<uuid:rule_id>/toggle/", rules.rule_toggle, name="alert-rule-toggle"),
    path("alerts/rules/<uuid:rule_id>/delete/", rules.rule_delete, name="alert-rule-delete"),
    path("alerts/groups/new/", rules.group_create, name="alert-group-new"),
    path("alerts/groups/<uuid:group_id>/", rules.group_edit, name="alert-group"),
    path("alerts/groups/<uuid:group_id>/delete/", rules.group_delete, name="alert-group-delete"),
    path("alerts/receivers/", receivers.receiver_list, name="alert-receivers"),
    path("alerts/receivers/new/", receivers.receiver_create, name="alert-receiver-new"),
    path("alerts/receivers/<uuid:receiver_id>/", receivers.receiver_edit, name="alert-receiver"),
    path(
        "alerts/receivers/<uuid:receiver_id>/delete/",
        receivers.receiver_delete,
        name="alert-receiver-delete",
    ),
    path(
        "alerts/receivers/<uuid:receiver_id>/test/",
        receivers.receiver_test,
        name="alert-receiver-test",
    ),
    path("alerts/policy/", policy.policy_page, name="alert-policy"),
    path("alerts/policy/<str:severity>/", policy.policy_update, name="alert-policy-update"),
    path("alerts/mute-timings/", policy.mute_timing_save, name="alert-mute-timing-save"),
    path("alerts/intake/rotate/", policy.intake_secret_rotate, name="alert-intake-rotate"),
    path("alerts/silences/", silences.silence_list, name="alert-silences"),
    path(
        "alerts/silences/<uuid:silence_id>/expire/",
        silences.silence_expire,
        name="alert-silence-expire",
    ),
    path("alerts/rule-file/export.yml", rulefiles.rulefile_export, name="alert-rulefile-export"),
    path("alerts/rule-file/import/", rulefiles.rulefile_import, name="alert-rulefile-import"),
    path(
        "alerts/rule-file/import/<str:token>/",
        rulefiles.rulefile_preview,
        name="alert-rulefile-preview",
    ),
    path("incidents/", incidents.incident_list, name="incidents"),
    path("incidents/rows/", incidents.incident_rows, name="incident-rows"),
    path("incidents/targets/", incidents.ack_targets_update, name="incident-ack-targets"),
    path("incidents/<uuid:incident_id>/", incident_detail.incident_page, name="incident"),
    path(
        "incidents/<uuid:incident_id>/timeline/",
        incident_detail.incident_timeline,
        name="incident-timeline",
    ),
    path(
        "incidents/<uuid:incident_id>/<str:action>/",
        incident_detail.incident_action,
        name="incident-action",
    ),
]
