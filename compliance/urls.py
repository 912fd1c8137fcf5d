from django.urls import path

from compliance import views

urlpatterns = [
    path("compliance/", views.overview, name="compliance"),
    path("compliance/run/", views.run_now, name="compliance-run"),
    path("compliance/controls/<str:code>/", views.control_detail, name="compliance-control"),
    path(
        "compliance/controls/<str:code>/attest/",
        views.control_attest,
        name="compliance-attest",
    ),
    path(
        "compliance/controls/<str:code>/evidence/",
        views.control_evidence,
        name="compliance-evidence-add",
    ),
    path("compliance/controls/<str:code>/owner/", views.control_owner, name="compliance-owner"),
    path(
        "compliance/evidence/<uuid:evidence_id>/download/",
        views.evidence_download,
        name="compliance-evidence-download",
    ),
    path(
        "compliance/evidence/<uuid:evidence_id>/remove/",
        views.evidence_remove,
        name="compliance-evidence-remove",
    ),
    path(
        "compliance/frameworks/<slug:code>/report/",
        views.framework_report,
        name="compliance-report",
    ),
    path(
        "compliance/frameworks/<slug:code>/report.csv",
        views.framework_report_csv,
        name="compliance-report-csv",
    ),
]
