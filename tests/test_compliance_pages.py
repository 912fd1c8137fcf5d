"""Compliance pages: overview, control page, attest with upload, downloads, reports, roles and
isolation between tenants."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from django_tenants.utils import tenant_context

from compliance import services
from compliance.models import ChainVerification, ControlStatus, Evidence, Status
from tenants import audit

pytestmark = pytest.mark.django_db

PDF = b"%PDF-1.4\n% acme board minutes\n%%EOF\n"
ACTOR = audit.Actor.system("test data")


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")


def _next_month() -> str:
    return (timezone.localdate() + timedelta(days=30)).isoformat()


def _attest(client, code="GOV-01", **extra):
    data = {
        "status": "passing",
        "reason": "Approved by the acme board.",
        "expires_on": _next_month(),
        **extra,
    }
    return client.post(f"/compliance/controls/{code}/attest/", data)


def test_every_role_with_view_compliance_sees_the_overview_with_a_score_per_framework(client_for):
    for role in ["executive", "operator", "security", "admin"]:
        response = client_for("acme", role).get("/compliance/")
        assert response.status_code == 200, role
        page = response.content.decode()
        for name in ["ISO/IEC 27001 2022", "SOC 2", "GDPR", "CCPA", "PCI DSS 4.0.1", "HIPAA"]:
            assert name in page
    assert "Run the checks now" not in client_for("acme", "executive").get("/compliance/").text
    assert "Run the checks now" in client_for("acme", "security").get("/compliance/").text


def test_strangers_and_anonymous_visitors_get_no_compliance_page(client_for):
    assert client_for("acme", None).get("/compliance/").status_code == 302
    assert client_for("acme", email="security@globex.example").get("/compliance/").status_code in (
        302,
        403,
    )


def test_failing_controls_come_first_with_why(client_for, acme):
    client = client_for("acme", "security")
    assert client.post("/compliance/run/").status_code == 302
    page = client.get("/compliance/").text
    controls = page.split("<h2>Controls</h2>", 1)[1]
    first_row = controls.split("<tbody>", 1)[1].split("</tr>", 1)[0]
    assert "badge-bad" in first_row
    assert "disabled or have no secret" in controls  # why IR-01 fails
    with tenant_context(acme):
        assert ControlStatus.objects.filter(control_code="IR-01", status=Status.FAILING).exists()


def test_an_executive_may_look_but_not_attest(client_for, acme):
    client = client_for("acme", "executive")
    page = client.get("/compliance/controls/GOV-01/")
    assert page.status_code == 200
    assert "Attest" not in page.text
    assert _attest(client).status_code == 403
    with tenant_context(acme):
        assert not ControlStatus.objects.filter(control_code="GOV-01").exists()


def test_attesting_with_a_file_shows_on_the_control_page(client_for, acme):
    client = client_for("acme", "security")
    response = _attest(
        client,
        evidence_title="Board minutes",
        evidence_file=SimpleUploadedFile("minutes.pdf", PDF, content_type="application/pdf"),
    )
    assert response.status_code == 302
    page = client.get("/compliance/controls/GOV-01/").text
    assert "Board minutes" in page
    assert "Approved by the acme board." in page
    assert "ISO/IEC 27001" in page and "A.5.1 " in page  # the requirements it maps to
    with tenant_context(acme):
        evidence = Evidence.objects.get(control_code="GOV-01")
    download = client.get(f"/compliance/evidence/{evidence.public_id}/download/")
    assert download.status_code == 200
    assert b"".join(download.streaming_content) == PDF
    assert download["Content-Type"] == "application/pdf"
    assert "attachment" in download["Content-Disposition"]


def test_a_refused_upload_answers_400_naming_the_field_and_writes_nothing(client_for, acme):
    client = client_for("acme", "security")
    response = _attest(
        client,
        evidence_title="Fake",
        evidence_file=SimpleUploadedFile("minutes.pdf", b"<html>not a pdf</html>"),
    )
    assert response.status_code == 400
    assert "not a PDF file" in response.text
    response = _attest(client, expires_on="2001-01-01")
    assert response.status_code == 400
    assert "in the past" in response.text
    with tenant_context(acme):
        assert not ControlStatus.objects.filter(control_code="GOV-01").exists()
        assert not Evidence.objects.exists()


def test_an_unknown_control_or_framework_is_404(client_for):
    client = client_for("acme", "security")
    assert client.get("/compliance/controls/NOPE-1/").status_code == 404
    assert _attest(client, code="NOPE-1").status_code == 404
    assert client.get("/compliance/frameworks/nist/report/").status_code == 404


def test_reports_list_controls_status_evidence_and_the_chain_state(client_for, acme):
    with tenant_context(acme):
        services.attest(
            control_code="GOV-01",
            status=Status.PASSING,
            reason="=HYPERLINK(evil)",
            expires_at=timezone.now() + timedelta(days=5),
            actor=ACTOR,
        )
        ChainVerification.objects.create(checked_at=timezone.now(), ok=True, rows=42, last_seq=42)
    client = client_for("acme", "executive")
    html = client.get("/compliance/frameworks/iso27001/report/")
    assert html.status_code == 200
    assert "chain verified at" in html.text and "42 events" in html.text
    assert "GOV-01" in html.text
    csv_response = client.get("/compliance/frameworks/iso27001/report.csv")
    assert csv_response.status_code == 200
    body = csv_response.content.decode()
    assert "audit chain verified at" in body
    assert "requirements,control,title,status" in body
    assert "'=HYPERLINK(evil)" in body  # a formula never reaches a spreadsheet as one
    gov = next(line for line in body.splitlines() if ",GOV-01," in line)
    assert "A.5.1 A.5.37" in gov and ",passing," in gov


def test_one_tenant_never_sees_another_tenants_statuses_or_evidence(client_for, acme, globex):
    acme_client = client_for("acme", "security")
    _attest(
        acme_client,
        reason="acme-only reason",
        evidence_title="acme minutes",
        evidence_file=SimpleUploadedFile("minutes.pdf", PDF),
    )
    with tenant_context(acme):
        evidence = Evidence.objects.get(control_code="GOV-01")
    globex_client = client_for("globex", "security")
    for path in [
        "/compliance/",
        "/compliance/controls/GOV-01/",
        "/compliance/frameworks/iso27001/report/",
        "/compliance/frameworks/iso27001/report.csv",
    ]:
        body = globex_client.get(path).content.decode()
        assert "acme-only reason" not in body, path
        assert "acme minutes" not in body, path
    # Acme's evidence id means nothing on globex's host ...
    download = f"/compliance/evidence/{evidence.public_id}/download/"
    assert globex_client.get(download).status_code == 404
    assert (
        globex_client.post(f"/compliance/evidence/{evidence.public_id}/remove/").status_code == 404
    )
    # ... and a globex member gets nothing on acme's host.
    stranger = client_for("acme", email="security@globex.example")
    assert stranger.get(download).status_code in (302, 403)
    with tenant_context(globex):
        assert not ControlStatus.objects.filter(control_code="GOV-01").exists()
        assert not Evidence.objects.exists()
    with tenant_context(acme):
        assert Evidence.objects.filter(public_id=evidence.public_id).exists()


def test_an_operator_cannot_remove_evidence_but_security_can(client_for, acme):
    with tenant_context(acme):
        evidence = services.add_evidence(
            control_code="GOV-01", kind="note", title="Review note", note="Reviewed.", actor=ACTOR
        )
    path = f"/compliance/evidence/{evidence.public_id}/remove/"
    assert client_for("acme", "operator").post(path).status_code == 403
    assert client_for("acme", "security").post(path).status_code == 302
    with tenant_context(acme):
        assert not Evidence.objects.exists()


def test_owner_and_review_date_are_saved_from_the_control_page(client_for, acme):
    from tenants.models import Membership

    owner = Membership.objects.get(tenant=acme, user__email="operator@acme.example")
    client = client_for("acme", "admin")
    review = _next_month()
    response = client.post(
        "/compliance/controls/OPS-05/owner/", {"owner": str(owner.public_id), "review_date": review}
    )
    assert response.status_code == 302
    page = client.get("/compliance/controls/OPS-05/").text
    assert "operator@acme.example" in page and review in page
    bad = client.post("/compliance/controls/OPS-05/owner/", {"owner": "not-a-member"})
    assert bad.status_code == 400


def test_controls_and_evidence_appear_in_the_tenant_admin_site(client_for, acme):
    with tenant_context(acme):
        services.add_evidence(
            control_code="GOV-01", kind="note", title="Admin-visible", note="x", actor=ACTOR
        )
    client = client_for("acme", "admin")
    listing = client.get("/admin/compliance/evidence/")
    assert listing.status_code == 200
    assert "Admin-visible" in listing.text
    assert client.get("/admin/compliance/controlstatus/").status_code == 200
    assert client_for("acme", "security").get("/admin/compliance/evidence/").status_code in (
        302,
        403,
    )


def test_an_automated_control_shows_its_source_and_offers_no_attestation(client_for):
    client = client_for("acme", "security")
    client.post("/compliance/run/")
    page = client.get("/compliance/controls/IR-01/")
    assert page.status_code == 200
    assert "by automated check" in page.text
    assert "History" in page.text and "not_assessed → failing" in page.text
    assert "compliance/controls/IR-01/attest/" not in page.text


def test_an_attestation_changed_in_the_admin_site_is_checked_and_audited(client_for, acme):
    from tenants.models import AuditEvent

    with tenant_context(acme):
        status = services.attest(
            control_code="GOV-01",
            status=Status.PASSING,
            reason="Approved.",
            expires_at=timezone.now() + timedelta(days=5),
            actor=ACTOR,
        )
    client = client_for("acme", "admin")
    url = f"/admin/compliance/controlstatus/{status.pk}/change/"
    expires = timezone.now() + timedelta(days=9)
    form = {
        "status": "failing",
        "reason": "Policy lapsed.",
        "expires_at_0": expires.date().isoformat(),
        "expires_at_1": "12:00:00",
    }
    refused = client.post(url, {**form, "status": "not_assessed"})
    assert refused.status_code == 200
    assert "Select a valid choice" in refused.text or "Choose passing" in refused.text
    assert client.post(url, {**form, "expires_at_0": "2001-01-01"}).status_code == 200
    with tenant_context(acme):
        assert ControlStatus.objects.get(pk=status.pk).status == Status.PASSING
    assert client.post(url, form).status_code == 302
    with tenant_context(acme):
        assert ControlStatus.objects.get(pk=status.pk).status == Status.FAILING
    event = AuditEvent.objects.filter(tenant=acme, action="compliance.attested").latest("seq")
    assert event.actor_label == "admin@acme.example"
    assert event.after["reason"] == "Policy lapsed."
