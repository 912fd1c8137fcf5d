from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("dashboards", "0003_rollup_5m")]

    operations = [
        migrations.AddField(
            model_name="panel",
            name="legend",
            field=models.CharField(blank=True, max_length=200),
        ),
    ]
