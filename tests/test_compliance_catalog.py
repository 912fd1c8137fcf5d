"""The framework catalog: versioned data files, checked, loaded idempotently (public schema)."""

from __future__ import annotations

import shutil
from io import StringIO

import pytest
import yaml
from django.core.management import CommandError, call_command

from compliance.checks import CHECKS
from compliance_catalog.loader import DATA_DIR, CatalogError, load_catalog, read_catalog
from compliance_catalog.models import CatalogLoad, Control, Framework, Requirement

pytestmark = pytest.mark.django_db

FRAMEWORKS = ["iso27001", "soc2", "gdpr", "ccpa", "pci_dss", "hipaa"]


def test_the_catalog_is_loaded_when_the_public_schema_is_migrated():
    assert list(Framework.objects.values_list("code", flat=True)) == FRAMEWORKS
    iso = Framework.objects.get(code="iso27001")
    assert iso.version == "2022"
    # Annex A of ISO/IEC 27001:2022 has 93 controls in four themes.
    assert iso.requirements.count() == 93
    assert set(iso.requirements.values_list("group_title", flat=True)) == {
        "Organisational controls",
        "People controls",
        "Physical controls",
        "Technological controls",
    }
    assert Framework.objects.get(code="pci_dss").requirements.filter(group_ref="12").exists()
    assert 25 <= Control.objects.filter(retired=False).count() <= 40
    assert CatalogLoad.objects.exists()


def test_every_framework_is_covered_and_every_control_maps_somewhere():
    for code in FRAMEWORKS:
        assert Control.objects.filter(requirements__framework__code=code).exists(), code
    assert not Control.objects.filter(requirements__isnull=True).exists()
    # One control, many frameworks: the P0 paging control counts in all six but CCPA.
    frameworks = set(
        Control.objects.get(code="IR-01").requirements.values_list("framework__code", flat=True)
    )
    assert frameworks == {"iso27001", "soc2", "gdpr", "pci_dss", "hipaa"}


def test_every_check_a_control_names_exists():
    named = set(Control.objects.exclude(check_name="").values_list("check_name", flat=True))
    assert named, "the catalog names automated checks"
    assert named <= set(CHECKS)


def test_loading_unchanged_files_again_changes_nothing():
    loads = CatalogLoad.objects.count()
    requirement_ids = sorted(Requirement.objects.values_list("pk", flat=True))
    outcome = load_catalog()
    assert outcome.status == "unchanged"
    assert CatalogLoad.objects.count() == loads
    assert sorted(Requirement.objects.values_list("pk", flat=True)) == requirement_ids


def test_a_new_revision_updates_rows_in_place_and_retires_dropped_controls(tmp_path):
    data = tmp_path / "data"
    shutil.copytree(DATA_DIR, data)
    controls = yaml.safe_load((data / "controls.yaml").read_text())
    controls["revision"] += 1
    dropped = controls["controls"].pop()["code"]
    controls["controls"][0]["title"] = "P0 alerts reach the on-call person"
    (data / "controls.yaml").write_text(yaml.safe_dump(controls))
    kept_pk = Control.objects.get(code=controls["controls"][0]["code"]).pk

    outcome = load_catalog(data)

    assert outcome.status == "loaded"
    first = Control.objects.get(code=controls["controls"][0]["code"])
    assert (first.pk, first.title) == (kept_pk, "P0 alerts reach the on-call person")
    assert Control.objects.get(code=dropped).retired
    assert CatalogLoad.objects.order_by("-pk").first().revisions["controls"] == controls["revision"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda c: c["controls"][0]["maps"].update(iso27001=["A.9.99"]), "no requirement 'A.9.99'"),
        (lambda c: c["controls"][0]["maps"].update(nist=["AC-1"]), "unknown framework 'nist'"),
        (lambda c: c["controls"].append(dict(c["controls"][0])), "appears twice"),
        (lambda c: c.update(revision=0), "'revision' must be a positive"),
        (lambda c: c["controls"][1].update(code="bad code"), "must look like 'IR-01'"),
    ],
)
def test_a_malformed_catalog_is_refused_naming_the_file_and_entry(tmp_path, change, message):
    data = tmp_path / "data"
    shutil.copytree(DATA_DIR, data)
    controls = yaml.safe_load((data / "controls.yaml").read_text())
    change(controls)
    (data / "controls.yaml").write_text(yaml.safe_dump(controls))
    loads = CatalogLoad.objects.count()
    with pytest.raises(CatalogError, match="controls.yaml") as caught:
        load_catalog(data)
    assert message in str(caught.value)
    assert CatalogLoad.objects.count() == loads


def test_invalid_yaml_in_a_framework_file_is_named(tmp_path):
    data = tmp_path / "data"
    shutil.copytree(DATA_DIR, data)
    (data / "gdpr.yaml").write_text("framework: gdpr\ngroups: [unclosed\n")
    with pytest.raises(CatalogError, match=r"gdpr\.yaml: not valid YAML"):
        read_catalog(data)


def test_the_command_reports_what_it_did():
    out = StringIO()
    call_command("load_compliance_catalog", stdout=out)
    assert "Catalog unchanged" in out.getvalue()
    assert "6 frameworks" in out.getvalue()
    out = StringIO()
    call_command("load_compliance_catalog", "--force", stdout=out)
    assert "Catalog loaded" in out.getvalue()


def test_the_command_fails_clearly_on_a_bad_catalog(tmp_path):
    (tmp_path / "catalog.yaml").write_text("frameworks: []\n")
    with pytest.raises(CommandError, match="catalog.yaml: 'frameworks' must list"):
        call_command("load_compliance_catalog", "--data-dir", str(tmp_path))
