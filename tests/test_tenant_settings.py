"""Tenant settings: admins rename their tenant; the change is audited; bad names change nothing."""

import pytest

from tenants.models import AuditEvent, Tenant


def test_an_admin_renames_the_tenant(client_for, acme):
    response = client_for("acme", "admin").post("/settings/", {"name": "Acme Worldwide"})

    assert response.status_code == 302
    assert Tenant.objects.get(pk=acme.pk).name == "Acme Worldwide"
    event = AuditEvent.objects.filter(tenant=acme, action__startswith="tenant.").order_by("-seq")
    event = event.first()
    assert event.action == "tenant.renamed"
    assert event.before == {"name": "Acme Corporation"}
    assert event.after == {"name": "Acme Worldwide"}
    assert "Acme Worldwide" in client_for("acme", "executive").get("/").content.decode()


@pytest.mark.parametrize("name", ["", "   ", "x" * 201])
def test_a_bad_name_is_a_400_naming_the_field_and_changes_nothing(client_for, acme, name):
    admin = client_for("acme", "admin")
    events = AuditEvent.objects.count()
    response = admin.post("/settings/", {"name": name})
    assert response.status_code == 400
    assert "Name: " in response.content.decode()
    assert Tenant.objects.get(pk=acme.pk).name == "Acme Corporation"
    assert AuditEvent.objects.count() == events


@pytest.mark.parametrize("role", ["executive", "operator", "security"])
def test_only_admins_reach_the_settings(client_for, acme, role):
    assert client_for("acme", role).get("/settings/").status_code == 403
    assert client_for("acme", role).post("/settings/", {"name": "Hijacked"}).status_code == 403
    assert Tenant.objects.get(pk=acme.pk).name == "Acme Corporation"
    assert not AuditEvent.objects.filter(tenant=acme, action="tenant.renamed").exists()
