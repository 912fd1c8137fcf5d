from django.db import migrations

# Five-minute rollups of the samples: what long ranges read instead of every sample. Exact for
# count, sum, min, max and avg; percentiles still read the samples.
ROLLUP_SQL = """
CREATE TABLE dashboards_rollup_5m (
    series_id bigint NOT NULL,
    bucket timestamptz NOT NULL,
    n bigint NOT NULL,
    total double precision NOT NULL,
    low double precision NOT NULL,
    high double precision NOT NULL,
    PRIMARY KEY (series_id, bucket)
);
"""


class Migration(migrations.Migration):
    dependencies = [("dashboards", "0002_catalog_store_panels")]

    operations = [migrations.RunSQL(ROLLUP_SQL, "DROP TABLE dashboards_rollup_5m")]
