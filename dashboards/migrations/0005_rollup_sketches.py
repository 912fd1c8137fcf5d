from django.db import migrations

# Percentiles from the rollups: each five-minute row gains a log-scale histogram of its values
# (`dashboards.sketch`: bins 2 % wide, a bin's key in the high 32 bits of each element and its
# count in the low 32), and an hourly rollup of the same shape serves long ranges. Both are
# rebuilt from the samples the tenant has, as `dashboards.store.rebuild_rollup` builds them.
SKETCH_SQL = """
ALTER TABLE dashboards_rollup_5m
    ADD COLUMN sketch bigint[] NOT NULL DEFAULT '{}',
    ADD COLUMN sketch_merged integer NOT NULL DEFAULT 0;
CREATE TABLE dashboards_rollup_1h (
    LIKE dashboards_rollup_5m INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING INDEXES
);
TRUNCATE dashboards_rollup_5m;
WITH binned AS (
    SELECT series_id, date_bin('5 minutes', ts, TIMESTAMPTZ '2000-01-01 00:00:00+00') AS bucket,
           CASE WHEN value = 0 THEN 0
                ELSE (sign(value) * (ceil(ln(abs(value)) / 0.020000666706669435) + 40000))::int
           END AS k,
           count(*) AS n, sum(value) AS total, min(value) AS low, max(value) AS high
      FROM dashboards_sample
     GROUP BY 1, 2, 3
), five AS (
    INSERT INTO dashboards_rollup_5m (series_id, bucket, n, total, low, high, sketch, sketch_merged)
    SELECT series_id, bucket, sum(n), sum(total), min(low), max(high),
           array_agg((k::bigint << 32) | least(n, 4294967295) ORDER BY k), count(*)
      FROM binned
     GROUP BY series_id, bucket
)
INSERT INTO dashboards_rollup_1h (series_id, bucket, n, total, low, high, sketch, sketch_merged)
SELECT series_id, bucket, sum(n), sum(total), min(low), max(high),
       array_agg((k::bigint << 32) | least(n, 4294967295) ORDER BY k), count(*)
  FROM (SELECT series_id, date_bin('1 hour', bucket, TIMESTAMPTZ '2000-01-01 00:00:00+00')
               AS bucket, k, sum(n)::bigint AS n, sum(total) AS total, min(low) AS low,
               max(high) AS high
          FROM binned
         GROUP BY 1, 2, 3) AS hourly
 GROUP BY series_id, bucket;
"""

DROP_SQL = """
DROP TABLE dashboards_rollup_1h;
ALTER TABLE dashboards_rollup_5m DROP COLUMN sketch, DROP COLUMN sketch_merged;
"""


class Migration(migrations.Migration):
    dependencies = [("dashboards", "0004_panel_legend")]

    operations = [migrations.RunSQL(SKETCH_SQL, DROP_SQL)]
