"""`POST /api/v1/metrics`: custom metrics pushed by applications (token scope `ingest`)."""

from __future__ import annotations

import time

from django.db import connection
from django.http import HttpResponse
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import ParseError
from rest_framework.parsers import BaseParser, JSONParser
from rest_framework.response import Response
from rest_framework.views import APIView

from dashboards import ingest, scrape
from tenants.roles import Perm

# A batch of 10,000 samples in the text format is about 1 MB; more is refused before parsing.
MAX_TEXT_BYTES = 4 * 1024 * 1024


class PrometheusTextParser(BaseParser):
    """The Prometheus text exposition format (`text/plain; version=0.0.4`)."""

    media_type = "text/plain"

    def parse(self, stream, media_type=None, parser_context=None):
        body = stream.read(MAX_TEXT_BYTES + 1) if stream is not None else b""
        if len(body) > MAX_TEXT_BYTES:
            raise ParseError(f"The body is larger than {MAX_TEXT_BYTES} bytes.")
        try:
            return body.decode("utf-8")
        except UnicodeDecodeError:
            raise ParseError("The text exposition format must be UTF-8.") from None


class MetricIngestView(APIView):
    """POST: store a batch of samples of the catalog's metrics (all or none).
    GET: their latest values in the Prometheus text format, for Prometheus to scrape."""

    # Plain JSON parsing: ingest checks every text it stores itself (unpaired surrogates, NUL),
    # once per distinct label set, instead of walking all of a large batch again.
    parser_classes = [JSONParser, PrometheusTextParser]
    action_permissions = {"get": Perm.VIEW_DASHBOARDS, "post": Perm.INGEST_METRICS}

    @extend_schema(
        operation_id="metrics_scrape",
        responses={200: OpenApiResponse(description="The Prometheus text exposition format.")},
        description=(
            "Every series of the catalog with its latest sample and `tenant` set by the portal. "
            "Point a Prometheus scrape job at it with a `read` token and `honor_labels: true`."
        ),
    )
    def get(self, request):
        # A plain response: the text format whatever the Accept header asks for.
        return HttpResponse(
            scrape.exposition_text(connection.schema_name), content_type=scrape.CONTENT_TYPE
        )

    @extend_schema(
        operation_id="metrics_ingest",
        request={
            "application/json": {
                "type": "object",
                "properties": {
                    "samples": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {
                                "name": {"type": "string"},
                                "labels": {"type": "object"},
                                "value": {"type": "number"},
                                "timestamp": {
                                    "oneOf": [
                                        {"type": "number"},
                                        {"type": "string", "format": "date-time"},
                                    ]
                                },
                            },
                        },
                    }
                },
            },
            "text/plain": {"type": "string"},
        },
        responses={
            202: OpenApiResponse(description="Every sample stored: {stored, took_ms}."),
            413: OpenApiResponse(description="More samples than one batch may hold."),
            429: OpenApiResponse(description="Over the tenant's samples per minute."),
        },
        description=(
            "JSON: samples with name, labels, a finite number as value and a timestamp in Unix "
            "seconds or ISO 8601 (default: now). Text: the Prometheus exposition format, "
            "timestamps in milliseconds. A refused batch stores nothing and answers 400 with "
            "`detail` and `errors`: one `{index, name, errors}` per bad sample (`index` is its "
            "position in `samples`, or its line number in the text format)."
        ),
    )
    def post(self, request):
        started = time.perf_counter()
        data = request.data
        try:
            raw = (
                ingest.parse_text_batch(data)
                if isinstance(data, str)
                else ingest.parse_json_batch(data)
            )
            stored = ingest.ingest(raw)
        except ingest.IngestError as exc:
            body = {"detail": exc.message}
            if exc.errors:
                body["errors"] = exc.errors
            return Response(body, status=exc.status)
        took_ms = round((time.perf_counter() - started) * 1000, 1)
        return Response({"stored": stored, "took_ms": took_ms}, status=status.HTTP_202_ACCEPTED)
