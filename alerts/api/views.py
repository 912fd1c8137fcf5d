"""Alerting API: rules, groups, receivers, policies, silences, the rule file. Rows come from the
tenant's own schema; every write goes through `alerts.services` (validated and audited)."""

from __future__ import annotations

from django.db.models import Count, QuerySet
from django.http import HttpResponse
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from alerts import queries, services
from alerts.api import serializers as s
from alerts.models import AlertRule, NotificationPolicy, Receiver, RuleGroup, Silence
from alerts.rulefile_import import (
    RuleFileError,
    apply_import,
    export_rule_file,
    parse_rule_file,
    plan_import,
)
from tenants import audit
from tenants.api.schema import TenantAutoSchema
from tenants.api.viewsets import TenantViewSet
from tenants.roles import Perm

VIEW, EDIT = Perm.VIEW_ALERTS, Perm.EDIT_ALERTS
CRUD = {
    "list": VIEW,
    "retrieve": VIEW,
    "create": EDIT,
    "partial_update": EDIT,
    "destroy": EDIT,
}


def _actor(request) -> audit.Actor:
    return audit.Actor.from_request(request)


class RuleGroupViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantViewSet):
    """Rule groups: rules evaluated together at the group's interval."""

    model = RuleGroup
    tenant_field = None
    serializer_class = s.RuleGroupSerializer
    action_permissions = CRUD

    def base_queryset(self) -> QuerySet:
        # The rule count of every listed group in the list's own query, not one query per group.
        return RuleGroup.objects.annotate(rules_counted=Count("rules"))

    @extend_schema(request=s.RuleGroupInput, responses={201: s.RuleGroupSerializer})
    def create(self, request):
        data = self.validated(s.RuleGroupInput)
        group = services.create_group(actor=_actor(request), **data)
        return Response(s.RuleGroupSerializer(group).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=s.RuleGroupInput, responses={200: s.RuleGroupSerializer})
    def partial_update(self, request, id=None):
        group = self.get_object()
        current = {"name": group.name, "interval": group.interval}
        data = self.validated(s.RuleGroupInput, partial=True, context={"current": current})
        group = services.update_group(group_id=group.public_id, actor=_actor(request), **data)
        return Response(s.RuleGroupSerializer(group).data)

    @extend_schema(responses={204: None}, description="Deletes the group and every rule in it.")
    def destroy(self, request, id=None):
        group = self.get_object()
        services.delete_group(group_id=group.public_id, actor=_actor(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


class AlertRuleViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantViewSet):
    """Alerting and recording rules, as the tenant wrote them (the tenant matcher is added when
    they run). `state` is what Prometheus evaluates now."""

    model = AlertRule
    tenant_field = None
    serializer_class = s.AlertRuleSerializer
    action_permissions = CRUD

    def base_queryset(self) -> QuerySet:
        return AlertRule.objects.select_related("group")

    def get_serializer_context(self) -> dict:
        context = super().get_serializer_context()
        if self.action in ("list", "retrieve") and getattr(self.request, "tenant", None):
            try:
                context["live"] = queries.rule_states(self.request.tenant.schema_name)
            except queries.Unavailable:
                context["live"] = None
        return context

    def _form_context(self, current: dict | None = None) -> dict:
        context = {"form_kwargs": {"schema": self.request.tenant.schema_name}}
        if current is not None:
            context["current"] = current
        return context

    @extend_schema(request=s.AlertRuleInput, responses={201: s.AlertRuleSerializer})
    def create(self, request):
        data = self.validated(s.AlertRuleInput, context=self._form_context())
        rule = services.create_rule(group_id=data.pop("group"), actor=_actor(request), **data)
        return Response(
            s.AlertRuleSerializer(rule, context={"live": None}).data,
            status=status.HTTP_201_CREATED,
        )

    @extend_schema(request=s.AlertRuleInput, responses={200: s.AlertRuleSerializer})
    def partial_update(self, request, id=None):
        rule = self.get_object()
        context = self._form_context(s.rule_form_values(rule))
        data = self.validated(s.AlertRuleInput, partial=True, context=context)
        rule = services.update_rule(
            rule_id=rule.public_id, group_id=data.pop("group"), actor=_actor(request), **data
        )
        return Response(s.AlertRuleSerializer(rule, context={"live": None}).data)

    @extend_schema(responses={204: None})
    def destroy(self, request, id=None):
        rule = self.get_object()
        services.delete_rule(rule_id=rule.public_id, actor=_actor(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


class ReceiverViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantViewSet):
    """Where notifications go. The secret is write-only: answers carry only its hint."""

    model = Receiver
    tenant_field = None
    serializer_class = s.ReceiverSerializer
    action_permissions = CRUD

    def base_queryset(self) -> QuerySet:
        return Receiver.objects.prefetch_related("policies")

    @extend_schema(request=s.ReceiverInput, responses={201: s.ReceiverSerializer})
    def create(self, request):
        data = self.validated(s.ReceiverInput)
        receiver = services.create_receiver(actor=_actor(request), **data)
        return Response(s.ReceiverSerializer(receiver).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        request=s.ReceiverInput,
        responses={200: s.ReceiverSerializer},
        description="A secret left out (or blank) keeps the stored one.",
    )
    def partial_update(self, request, id=None):
        receiver = self.get_object()
        context = {
            "form_kwargs": {"editing": True},
            "current": s.receiver_form_values(receiver),
        }
        data = self.validated(s.ReceiverInput, partial=True, context=context)
        receiver = services.update_receiver(
            receiver_id=receiver.public_id, actor=_actor(request), **data
        )
        return Response(s.ReceiverSerializer(receiver).data)

    @extend_schema(
        responses={204: None},
        description="Refused (400) while a notification policy names the receiver.",
    )
    def destroy(self, request, id=None):
        receiver = self.get_object()
        services.delete_receiver(receiver_id=receiver.public_id, actor=_actor(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


class NotificationPolicyViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantViewSet):
    """Who is told about each severity, and how often (one policy per severity)."""

    model = NotificationPolicy
    tenant_field = None
    serializer_class = s.NotificationPolicySerializer
    action_permissions = {"list": VIEW, "retrieve": VIEW, "partial_update": EDIT}

    def base_queryset(self) -> QuerySet:
        return NotificationPolicy.objects.prefetch_related("receivers", "mute_timings")

    @extend_schema(
        request=s.NotificationPolicyInput, responses={200: s.NotificationPolicySerializer}
    )
    def partial_update(self, request, id=None):
        policy = self.get_object()
        context = {"current": s.policy_form_values(policy)}
        data = self.validated(s.NotificationPolicyInput, partial=True, context=context)
        policy = services.update_policy(severity=policy.severity, actor=_actor(request), **data)
        return Response(s.NotificationPolicySerializer(policy).data)


class SilenceViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantViewSet):
    """Silences applied in Alertmanager; the tenant's matcher is always added."""

    model = Silence
    tenant_field = None
    serializer_class = s.SilenceSerializer
    action_permissions = {"list": VIEW, "retrieve": VIEW, "create": EDIT, "expire": EDIT}

    @extend_schema(request=s.SilenceInput, responses={201: s.SilenceSerializer})
    def create(self, request):
        data = self.validated(s.SilenceInput)
        silence = services.create_silence(actor=_actor(request), **data)
        return Response(s.SilenceSerializer(silence).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={200: s.SilenceSerializer})
    @action(detail=True, methods=["post"])
    def expire(self, request, id=None):
        """End the silence now (an expired one stays as it is)."""
        silence = self.get_object()
        silence = services.expire_silence(silence_id=silence.public_id, actor=_actor(request))
        return Response(s.SilenceSerializer(silence).data)


class _OneDocumentSchema(TenantAutoSchema):
    """GET on the collection answers one document (the rule file), not a list of them."""

    def _is_list_view(self, serializer=None) -> bool:
        return False


class RuleFileViewSet(TenantViewSet):
    """The tenant's rules as a Prometheus rule file: GET exports it, POST imports one."""

    schema = _OneDocumentSchema()
    model = AlertRule
    tenant_field = None
    pagination_class = None
    serializer_class = s.RuleFileImportSerializer
    action_permissions = {"list": VIEW, "create": EDIT}

    @extend_schema(
        responses={
            (200, "application/yaml"): OpenApiResponse(
                response=s.RuleFileDocumentSerializer,
                description="The enabled rules as a Prometheus rule file (YAML).",
            )
        },
        operation_id="rule_file_export",
    )
    def list(self, request):
        text = export_rule_file(request.tenant.name)
        response = HttpResponse(text, content_type="application/yaml; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{request.tenant.slug}-rules.yml"'
        return response

    @extend_schema(
        request=s.RuleFileImportSerializer,
        responses={200: s.RuleFilePlanSerializer},
        operation_id="rule_file_import",
        description=(
            "Checks the file and says what it would add, change and remove; with "
            "`dry_run: false` applies it in one transaction (all of it or nothing). A file "
            "that cannot be imported is a 400 whose `content` lists each problem."
        ),
    )
    def create(self, request):
        data = self.validated(s.RuleFileImportSerializer)
        schema = request.tenant.schema_name
        try:
            if data["dry_run"]:
                plan = plan_import(
                    parse_rule_file(data["content"], schema=schema),
                    remove_missing=data["remove_missing"],
                )
            else:
                plan = apply_import(
                    data["content"],
                    schema=schema,
                    actor=_actor(request),
                    remove_missing=data["remove_missing"],
                )
        except RuleFileError as exc:
            raise ValidationError({"content": exc.errors}) from None
        return Response({"applied": not data["dry_run"], **plan.summary()})
