"""Tenant.require_two_factor: members must sign in with a second factor to use the tenant."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("tenants", "0003_audit_chain"),
    ]

    operations = [
        migrations.AddField(
            model_name="tenant",
            name="require_two_factor",
            field=models.BooleanField(default=False),
        ),
    ]
