"""Validation of dashboard writes, shared by the pages and the API (`dashboards.api.serializers`).

Services take the cleaned values and check them again (the admin and commands call them too).
"""

from __future__ import annotations

from dashboards.models import Dashboard
from tenants.forms import PortalForm, TextField

TITLE_MAX = Dashboard._meta.get_field("title").max_length
# The column is unbounded text; a description is a sentence or two, not a document.
DESCRIPTION_MAX = 2000


class DashboardForm(PortalForm):
    title = TextField(label="Title", max_length=TITLE_MAX)
    description = TextField(
        label="Description", max_length=DESCRIPTION_MAX, multiline=True, required=False
    )
