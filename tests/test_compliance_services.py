"""Compliance writes: attestations and their expiry, evidence checks, scores and snapshots."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from django_tenants.utils import tenant_context

from compliance import services
from compliance.assessment import take_snapshots
from compliance.catalog import ControlInfo, FrameworkInfo, RequirementRef
from compliance.evidence import MAX_FILE_BYTES
from compliance.models import (
    ComplianceSnapshot,
    ControlStatus,
    Evidence,
    Source,
    Status,
    StatusChange,
)
from compliance.scoring import framework_scores
from compliance_catalog.models import Control
from tenants import audit
from tenants.models import AuditEvent, Membership

pytestmark = pytest.mark.django_db

ACTOR = audit.Actor.system("test data")
PDF = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 32


@pytest.fixture
def in_acme(acme, settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    with tenant_context(acme):
        yield acme


def _in_a_week():
    return timezone.now() + timedelta(days=7)


def test_attesting_a_manual_control_records_status_history_and_audit(in_acme):
    status = services.attest(
        control_code="GOV-01",
        status=Status.PASSING,
        reason="Policy v3 approved by the board on 2026-10-01.",
        expires_at=_in_a_week(),
        actor=ACTOR,
    )
    assert (status.status, status.source) == (Status.PASSING, Source.ATTESTATION)
    [change] = StatusChange.objects.filter(control_code="GOV-01")
    assert (change.previous_status, change.status) == (Status.NOT_ASSESSED, Status.PASSING)
    event = AuditEvent.objects.filter(tenant=in_acme, action="compliance.attested").latest("seq")
    assert event.object_id == "GOV-01"
    assert event.after["status"] == Status.PASSING


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"control_code": "IR-01"}, "control"),  # measured automatically
        ({"control_code": "XX-99"}, "control"),
        ({"status": Status.NOT_ASSESSED}, "status"),
        ({"reason": "  "}, "reason"),
        ({"reason": "bad\x00byte"}, "reason"),
        ({"expires_at": timezone.now() - timedelta(minutes=1)}, "expires_at"),
    ],
)
def test_a_bad_attestation_names_the_field_and_writes_nothing(in_acme, values, field):
    arguments = {
        "control_code": "GOV-01",
        "status": Status.PASSING,
        "reason": "fine",
        "expires_at": _in_a_week(),
        **values,
    }
    with pytest.raises(ValidationError) as caught:
        services.attest(actor=ACTOR, **arguments)
    assert field in caught.value.message_dict
    assert not StatusChange.objects.exists()
    assert not ControlStatus.objects.filter(status=Status.PASSING).exists()


def test_an_expired_attestation_turns_to_not_assessed_and_its_owner_is_told(
    in_acme, eager_tasks, mailoutbox, django_capture_on_commit_callbacks
):
    owner = Membership.objects.get(tenant=in_acme, user__email="security@acme.example")
    services.set_owner(
        tenant=in_acme,
        control_code="HR-02",
        membership_id=owner.public_id,
        review_date=None,
        actor=ACTOR,
    )
    services.attest(
        control_code="HR-02",
        status=Status.PASSING,
        reason="Training completed by all staff.",
        expires_at=_in_a_week(),
        actor=ACTOR,
    )
    assert services.expire_attestations() == []  # not yet

    with django_capture_on_commit_callbacks(execute=True):
        expired = services.expire_attestations(now=timezone.now() + timedelta(days=8))

    assert [(e.control_code, e.owner_email) for e in expired] == [
        ("HR-02", "security@acme.example")
    ]
    status = ControlStatus.objects.get(control_code="HR-02")
    assert status.status == Status.NOT_ASSESSED
    assert "expired" in status.reason
    assert AuditEvent.objects.filter(
        tenant=in_acme, action="compliance.attestation_expired"
    ).exists()
    [mail] = mailoutbox
    assert mail.to == ["security@acme.example"]
    assert "HR-02" in mail.subject
    assert "/compliance/controls/HR-02/" in mail.body


def test_an_owner_must_be_a_member_of_the_tenant(in_acme, globex):
    stranger = Membership.objects.filter(tenant=globex).first()
    with pytest.raises(ValidationError) as caught:
        services.set_owner(
            tenant=in_acme,
            control_code="HR-02",
            membership_id=stranger.public_id,
            review_date=None,
            actor=ACTOR,
        )
    assert "owner" in caught.value.message_dict


def test_a_file_is_stored_under_its_tenant_and_its_type_taken_from_the_content(in_acme):
    evidence = services.add_evidence(
        control_code="GOV-01",
        kind=Evidence.Kind.FILE,
        title="Signed policy",
        file=SimpleUploadedFile("policy v3.pdf", PDF, content_type="text/html"),
        actor=ACTOR,
    )
    assert evidence.file.name.startswith(f"evidence/acme/{evidence.public_id}/")
    assert evidence.file.name.endswith(".pdf")
    assert evidence.content_type == "application/pdf"
    assert evidence.size == len(PDF)
    with evidence.file.open("rb") as stored:
        assert stored.read() == PDF


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("policy.pdf", PNG, "not a PDF file"),
        ("tool.exe", b"MZ...", "Only PDF, PNG, JPEG, TXT and CSV"),
        ("notes.txt", b"abc\x00def", "not text"),
        ("empty.csv", b"", "empty"),
        ("big.txt", b"a" * (MAX_FILE_BYTES + 1), "larger than 10 MB"),
    ],
)
def test_a_bad_file_is_refused_and_nothing_is_stored(in_acme, settings, name, content, message):
    from pathlib import Path

    with pytest.raises(ValidationError) as caught:
        services.add_evidence(
            control_code="GOV-01",
            kind=Evidence.Kind.FILE,
            title="x",
            file=SimpleUploadedFile(name, content),
            actor=ACTOR,
        )
    assert message in " ".join(caught.value.message_dict["file"])
    assert not Evidence.objects.exists()
    assert not list(Path(settings.MEDIA_ROOT).rglob("*.*"))


def test_links_must_be_https_and_notes_must_have_text(in_acme):
    for url in ["http://wiki.example/policy", "javascript:alert(1)", "ftp://x.example/"]:
        with pytest.raises(ValidationError) as caught:
            services.add_evidence(
                control_code="GOV-01", kind="link", title="Wiki", url=url, actor=ACTOR
            )
        assert "url" in caught.value.message_dict
    link = services.add_evidence(
        control_code="GOV-01",
        kind="link",
        title="Wiki",
        url="https://wiki.example/policy",
        actor=ACTOR,
    )
    assert link.url == "https://wiki.example/policy"
    with pytest.raises(ValidationError) as caught:
        services.add_evidence(control_code="GOV-01", kind="note", title="N", note=" ", actor=ACTOR)
    assert "note" in caught.value.message_dict
    assert Evidence.objects.count() == 1


def test_removing_evidence_deletes_its_file_on_commit(in_acme, django_capture_on_commit_callbacks):
    evidence = services.add_evidence(
        control_code="GOV-01",
        kind="file",
        title="Scan",
        file=SimpleUploadedFile("scan.png", PNG),
        actor=ACTOR,
    )
    storage, name = evidence.file.storage, evidence.file.name
    with django_capture_on_commit_callbacks(execute=True):
        services.remove_evidence(evidence_id=evidence.public_id, actor=ACTOR)
    assert not Evidence.objects.exists()
    assert not storage.exists(name)
    assert AuditEvent.objects.filter(tenant=in_acme, action="compliance.evidence_removed").exists()


def _control(code: str, refs: dict[str, int]) -> ControlInfo:
    return ControlInfo(
        code,
        code,
        "",
        "",
        {fw: [RequirementRef(f"{fw}.{i}", "t", "g") for i in range(n)] for fw, n in refs.items()},
    )


def test_a_control_counts_once_per_framework_however_many_requirements_it_maps():
    one, two = FrameworkInfo("one", "One", "1"), FrameworkInfo("two", "Two", "1")
    controls = [
        _control("A-01", {"one": 3, "two": 1}),  # three requirements of "one": still one control
        _control("B-01", {"one": 1}),
        _control("C-01", {"one": 1, "two": 2}),
        _control("D-01", {"one": 1}),  # no status yet: not assessed
    ]
    statuses = {"A-01": Status.PASSING, "B-01": Status.FAILING, "C-01": Status.NOT_APPLICABLE}
    first, second = framework_scores([one, two], controls, statuses)
    assert (first.passing, first.failing, first.not_assessed, first.not_applicable) == (1, 1, 1, 1)
    assert first.applicable == 3
    assert first.score == 33.3  # 1 of 3 applicable
    assert (second.total, second.applicable, second.score) == (2, 1, 100.0)


def test_the_daily_snapshot_holds_hand_computed_scores_and_is_replaced_the_same_day(in_acme):
    ccpa = list(
        Control.objects.filter(requirements__framework__code="ccpa", retired=False)
        .distinct()
        .values_list("code", flat=True)
    )
    assert len(ccpa) >= 4
    until = _in_a_week()
    ControlStatus.objects.all().delete()
    statuses = [Status.PASSING, Status.PASSING, Status.NOT_APPLICABLE]
    for code, status in zip(ccpa[:3], statuses, strict=True):
        ControlStatus.objects.create(
            control_code=code,
            status=status,
            source=Source.ATTESTATION,
            expires_at=until,
            updated_at=timezone.now(),
        )
    take_snapshots(in_acme)
    snapshot = ComplianceSnapshot.objects.get(framework_code="ccpa", day=timezone.localdate())
    expected = round(100 * 2 / (len(ccpa) - 1), 1)
    assert (snapshot.passing, snapshot.not_applicable, snapshot.score) == (2, 1, expected)
    assert snapshot.not_assessed == len(ccpa) - 3

    ControlStatus.objects.filter(control_code=ccpa[0]).update(status=Status.FAILING)
    take_snapshots(in_acme)
    snapshot = ComplianceSnapshot.objects.get(framework_code="ccpa", day=timezone.localdate())
    assert (snapshot.passing, snapshot.failing) == (1, 1)
    assert ComplianceSnapshot.objects.filter(framework_code="ccpa").count() == 1


def test_a_portal_record_must_be_one_of_the_tenants_own(in_acme, globex):
    from dashboards.models import Dashboard

    own = Dashboard.objects.first()
    evidence = services.add_evidence(
        control_code="MON-03",
        kind="record",
        title="Executive dashboard",
        record_type="dashboards.dashboard",
        record_id=str(own.public_id),
        actor=ACTOR,
    )
    assert (evidence.record_type, evidence.record_id) == (
        "dashboards.dashboard",
        str(own.public_id),
    )
    with tenant_context(globex):
        theirs = Dashboard.objects.first().public_id
    for record_type, record_id, field in [
        ("dashboards.dashboard", str(theirs), "record_id"),
        ("dashboards.dashboard", "not-a-uuid", "record_id"),
        ("auth.user", "1", "record_type"),
    ]:
        with pytest.raises(ValidationError) as caught:
            services.add_evidence(
                control_code="MON-03",
                kind="record",
                title="x",
                record_type=record_type,
                record_id=record_id,
                actor=ACTOR,
            )
        assert field in caught.value.message_dict
    assert Evidence.objects.count() == 1


def test_a_member_who_leaves_owns_no_control_any_more(acme, django_capture_on_commit_callbacks):
    from tenants import services as tenant_services
    from tests.factories import MembershipFactory

    leaving = MembershipFactory(tenant=acme, role="security")
    with tenant_context(acme):
        services.set_owner(
            tenant=acme,
            control_code="HR-02",
            membership_id=leaving.public_id,
            review_date=None,
            actor=ACTOR,
        )
    with django_capture_on_commit_callbacks(execute=True):
        tenant_services.remove_member(tenant=acme, membership_id=leaving.public_id, actor=ACTOR)
    with tenant_context(acme):
        status = ControlStatus.objects.get(control_code="HR-02")
        assert (status.owner_email, status.owner_membership_id) == ("", None)
