"""What the benchmark scripts share: a database of their own, percentiles, the machine's load.

Imported after the script has set Django up (as each script does first).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def bench_database(suffix: str) -> Iterator[None]:
    """A fresh database for the run, `<database><suffix>`: migrated, with the public tenant and
    the template schema; dropped at the end (an interrupted run's leftover is replaced). Each
    script has its own suffix, so two running at once never drop each other's database."""
    from django.db import connection
    from django.test.utils import setup_databases, teardown_databases

    from tenants.provisioning import ensure_public_tenant, ensure_template_schema

    name = f"{connection.settings_dict['NAME']}{suffix}"
    print(f"preparing a database of its own: {name}", flush=True)
    connection.settings_dict["TEST"]["NAME"] = name
    config = setup_databases(
        verbosity=0, interactive=False, aliases={"default"}, serialized_aliases=set()
    )
    try:
        ensure_public_tenant()
        ensure_template_schema()
        yield
    finally:
        connection.set_schema_to_public()
        teardown_databases(config, verbosity=0)


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile (nan for no values)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(pct / 100 * len(ordered)) - 1)]


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())
