"""`TenantViewSet`: the one base of every API resource (per-action permissions, UUID lookups)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any, ClassVar

from django.db import connection
from django.db.models import Model, QuerySet
from rest_framework import serializers
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.viewsets import GenericViewSet

from tenants.roles import Perm

NOT_FOUND = "Not found."


def not_found() -> NotFound:
    """The one answer for "no such object here": the same for absent, foreign and malformed ids."""
    return NotFound(NOT_FOUND)


def parse_object_id(value: object) -> uuid.UUID:
    """The UUID named in a URL; anything else names no object, so it is a 404, never a 400."""
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise not_found() from None


class TenantViewSet(GenericViewSet):
    """Base of every API resource: scoped to the request's tenant, permissions per action.

    Subclasses declare `model` and `action_permissions` ({action name: Perm}); the permission
    class refuses any action missing from it. Rows come from `base_queryset()`: models in the
    public schema are filtered by `tenant_field`, tenant-schema models (`tenant_field = None`)
    are scoped by the connection's schema, which is checked to be the request tenant's.
    """

    action_permissions: ClassVar[Mapping[str, Perm]] = {}
    model: ClassVar[type[Model]]
    tenant_field: ClassVar[str | None] = "tenant"
    lookup_field = "public_id"
    lookup_url_kwarg = "id"
    # DRF's default, kept loose on purpose: a malformed id reaches `get_object` and gets the same
    # 404 as an absent one (an id with "/" or "." gets it from the API's catch-all route).
    lookup_value_regex = "[^/.]+"

    def base_queryset(self) -> QuerySet:
        """The resource's rows before tenant scoping (select_related, filters of a list...)."""
        return self.model.objects.all()

    def get_queryset(self) -> QuerySet:
        if getattr(self, "swagger_fake_view", False):  # schema generation has no tenant
            return self.model.objects.none()
        rows = self.base_queryset()
        tenant = self.request.tenant
        if self.tenant_field is not None:
            return rows.filter(**{self.tenant_field: tenant})
        if connection.schema_name != tenant.schema_name:
            # A tenant-schema model read outside its tenant's schema would show another tenant.
            raise RuntimeError(
                f"{type(self).__name__}: connection is on {connection.schema_name!r}, "
                f"request is for {tenant.schema_name!r}"
            )
        return rows

    def object_id(self) -> uuid.UUID:
        """The UUID of the object this request names (404 unless it is one)."""
        return parse_object_id(self.kwargs.get(self.lookup_url_kwarg or self.lookup_field))

    def get_object(self) -> Model:
        obj = self.get_queryset().filter(**{self.lookup_field: self.object_id()}).first()
        if obj is None:
            raise not_found()
        self.check_object_permissions(self.request, obj)
        return obj

    def validated(
        self,
        serializer_class: type[serializers.Serializer],
        *,
        partial: bool = False,
        context: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The request body as `serializer_class` validates it, or a 400 naming each bad field.

        `partial=True` (PATCH) checks and returns only the fields sent.
        """
        serializer = serializer_class(
            data=self.request.data, partial=partial, context=context or {}
        )
        refused = _refused_as_sent(serializer, self.request.data)
        if refused:
            raise ValidationError(refused)
        serializer.is_valid(raise_exception=True)
        return dict(serializer.validated_data)


def _refused_as_sent(serializer: serializers.Serializer, data: object) -> dict[str, list[str]]:
    """What the schema refuses in the body as sent, before any cleaning could hide it.

    `null` for a field not marked nullable is refused, not taken as absent; text longer than the
    field's `maxLength` is refused even if trimming would bring it under the limit.
    """
    if not isinstance(data, Mapping):
        return {}
    errors: dict[str, list[str]] = {}
    for name, field in serializer.fields.items():
        if field.read_only or name not in data:
            continue
        value = data[name]
        limit = getattr(field, "max_length", None)
        if value is None and not field.allow_null:
            errors[name] = ["This field may not be null."]
        elif isinstance(value, str) and limit is not None and len(value) > limit:
            errors[name] = [f"Use at most {limit} characters (this has {len(value)})."]
    return errors
