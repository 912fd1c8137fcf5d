"""The audit trail page and its CSV export, both narrowed by the same validated filters."""

from __future__ import annotations

import csv
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC
from typing import Any

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIRequest
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from tenants import audit, audit_chain
from tenants.audit_filters import FIRST_DAY, LAST_DAY, TEXT_MAX, AuditFilterForm
from tenants.models import AuditEvent
from tenants.pages.decorators import require_perm
from tenants.roles import Perm

PAGE_SIZE = 50
INLINE_MAX = 60  # longer values fold into a <details> ...
SUMMARY_LENGTH = 40  # ... whose summary shows this much of them
EXPORT_CHUNK = 2000  # rows per database fetch
EXPORT_BATCH = 500  # rows per piece of the response
EXPORT_COLUMNS = [
    "seq",
    "occurred_at",
    "actor_kind",
    "actor_id",
    "actor_label",
    "action",
    "object_type",
    "object_id",
    "object_repr",
    "before",
    "after",
    "remote_addr",
]
# A spreadsheet runs a cell that starts with one of these as a formula (CSV injection).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class ShownValue:
    """One before/after entry as the page shows it: short text, and in full if it is long."""

    key: str
    text: str
    full: str = ""


def _shown(value: Any) -> tuple[str, str]:
    if value is None:
        return "—", ""
    if isinstance(value, dict | list):
        full = json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)
        compact = json.dumps(value, ensure_ascii=False, sort_keys=True)
        return (compact, "") if len(compact) <= INLINE_MAX else (_summary(compact), full)
    text = json.dumps(value) if isinstance(value, bool) else str(value)
    return (text, "") if len(text) <= INLINE_MAX else (_summary(text), text)


def _summary(text: str) -> str:
    return text[: SUMMARY_LENGTH - 1] + "…"


def shown_values(values: Any) -> list[ShownValue]:
    """The entries of an event's before or after, ready for `tenants/_audit_values.html`."""
    if values is None:
        return []
    items = values.items() if isinstance(values, dict) else [("", values)]
    return [ShownValue(str(key), *_shown(value)) for key, value in items]


@dataclass(frozen=True)
class FilterField:
    """One filter input as the page renders it, with its errors."""

    name: str
    label: str
    type: str
    value: str
    errors: list[str]
    help: str


def _filter_fields(form: AuditFilterForm) -> list[FilterField]:
    fields = []
    for name in form.FILTERS:
        bound = form[name]
        if name in getattr(form, "cleaned_data", {}) and not bound.errors:
            value = form.cleaned_data[name]
            shown = value.isoformat() if hasattr(value, "isoformat") else str(value or "")
        else:
            # A refused value is shown back without its control characters, and cut short.
            shown = audit.clean_label(form.data.get(name, ""), 200)
        kind = "date" if name.startswith("date_") else "text"
        fields.append(
            FilterField(name, bound.label, kind, shown, list(bound.errors), bound.help_text)
        )
    return fields


def _trail_page(request, form: AuditFilterForm, status: int = 200, **context) -> HttpResponse:
    context = {
        "form": form,
        "filter_fields": _filter_fields(form),
        "limits": {"text_max": TEXT_MAX, "first_day": FIRST_DAY, "last_day": LAST_DAY},
        "action_groups": audit.action_groups(),
        "page_size": PAGE_SIZE,
        "verification": audit_chain.last_verification(),
        **context,
    }
    return render(request, "tenants/audit.html", context, status=status)


@require_perm(Perm.VIEW_AUDIT)
@require_GET
def audit_trail(request):
    form = AuditFilterForm(request.GET)
    if not form.is_valid():
        return _trail_page(request, form, status=400)
    events = audit.events_for(request.tenant, **form.event_filters())
    page = Paginator(events, PAGE_SIZE).get_page(form.cleaned_data.get("page") or 1)
    rows = [
        (event, shown_values(event.before), shown_values(event.after)) for event in page.object_list
    ]
    return _trail_page(
        request, form, listed=True, page=page, rows=rows, filtered=form.is_filtered()
    )


# ---- CSV export --------------------------------------------------------------------------------


def _cell(value: Any) -> Any:
    if isinstance(value, dict | list):
        value = json.dumps(value, ensure_ascii=False, sort_keys=True)
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return "" if value is None else value


def _csv_row(event: AuditEvent) -> list[Any]:
    when = event.occurred_at.astimezone(UTC).isoformat()
    return [
        _cell(when if name == "occurred_at" else getattr(event, name)) for name in EXPORT_COLUMNS
    ]


class _Lines(list):
    """A file-like sink for csv.writer that keeps the written lines."""

    def write(self, line: str) -> None:
        self.append(line)


def csv_pieces(events: QuerySet[AuditEvent]) -> Iterator[str]:
    """The CSV of `events`, header first, in pieces of up to EXPORT_BATCH rows.

    Rows are fetched EXPORT_CHUNK at a time from a server-side cursor, so memory stays flat
    however long the trail is.
    """
    lines = _Lines()
    writer = csv.writer(lines)
    writer.writerow(EXPORT_COLUMNS)
    for count, event in enumerate(events.iterator(chunk_size=EXPORT_CHUNK), start=1):
        writer.writerow(_csv_row(event))
        if count % EXPORT_BATCH == 0:
            yield "".join(lines)
            lines.clear()
    if lines:
        yield "".join(lines)


async def _each_piece_in_turn(pieces: Iterator[str]) -> AsyncIterator[str]:
    # Under ASGI Django would read a synchronous iterator to its end before sending a byte; an
    # asynchronous one is sent piece by piece. Each piece is made in the request's own thread
    # (thread-sensitive), so the database cursor stays on the connection that opened it.
    next_piece = sync_to_async(next, thread_sensitive=True)
    while (piece := await next_piece(pieces, None)) is not None:
        yield piece


@require_perm(Perm.VIEW_AUDIT)
@require_GET
def audit_export(request):
    """The filtered trail as a CSV download, streamed."""
    form = AuditFilterForm(request.GET)
    if not form.is_valid():
        return _trail_page(request, form, status=400)
    events = audit.events_for(request.tenant, **form.event_filters())
    pieces = csv_pieces(events)
    content = _each_piece_in_turn(pieces) if isinstance(request, ASGIRequest) else pieces
    response = StreamingHttpResponse(content, content_type="text/csv; charset=utf-8")
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    response["Content-Disposition"] = (
        f'attachment; filename="audit-{request.tenant.slug}-{stamp}.csv"'
    )
    response["Cache-Control"] = "no-store"
    return response
