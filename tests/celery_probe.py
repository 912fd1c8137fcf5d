"""A task only the test worker loads: it reads and changes a dashboard by primary key.

It proves that a task runs in the schema of the tenant that sent it, whatever ids it is given.
"""

from celery import shared_task


@shared_task(ignore_result=False)
def retitle_dashboard(pk: int, suffix: str) -> dict:
    from django.db import connection

    from dashboards.models import Dashboard

    dashboard = Dashboard.objects.get(pk=pk)
    dashboard.title = f"{dashboard.title}{suffix}"
    dashboard.save(update_fields=["title"])
    return {"schema": connection.schema_name, "title": dashboard.title}
