"""Membership.joined_at: a member's first sign-in on the tenant's host."""

from django.db import migrations, models
from django.db.models import F


def backfill(apps, schema_editor):
    # Members added before this field existed count as joined when they signed in anywhere after
    # being added; everyone else stays "invited" until their next sign-in on the tenant's host.
    Membership = apps.get_model("tenants", "Membership")
    Membership.objects.filter(user__last_login__gte=F("created_at")).update(
        joined_at=F("created_at")
    )


class Migration(migrations.Migration):
    dependencies = [
        ("tenants", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="membership",
            name="joined_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.RunPython(backfill, migrations.RunPython.noop),
    ]
