"""API views for members, tokens and the audit trail; writes go through `tenants.services`."""

from django.http import Http404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from tenants import audit, services
from tenants.api import serializers as s
from tenants.api.lookups import UUID_PATTERN
from tenants.models import ApiToken, AuditEvent, Membership
from tenants.roles import Perm


class MemberViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """The tenant's members and their roles."""

    serializer_class = s.MembershipSerializer
    lookup_field = "public_id"
    lookup_url_kwarg = "id"
    lookup_value_regex = UUID_PATTERN
    read_perm = Perm.VIEW_MEMBERS
    write_perm = Perm.MANAGE_MEMBERS

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation has no tenant
            return Membership.objects.none()
        return Membership.objects.filter(tenant=self.request.tenant).select_related("user")

    @extend_schema(
        request=s.MemberInviteSerializer,
        responses={201: s.MembershipSerializer},
        description="Adds the person (creating their account if needed) and e-mails them.",
    )
    def create(self, request):
        data = s.MemberInviteSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        membership = services.add_member(
            tenant=request.tenant, actor=audit.Actor.from_request(request), **data.validated_data
        )
        return Response(s.MembershipSerializer(membership).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=s.MemberRoleSerializer, responses={200: s.MembershipSerializer})
    def partial_update(self, request, id=None):
        data = s.MemberRoleSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            membership = services.change_role(
                tenant=request.tenant,
                membership_id=id,
                role=data.validated_data["role"],
                actor=audit.Actor.from_request(request),
            )
        except Membership.DoesNotExist:
            raise Http404 from None
        return Response(s.MembershipSerializer(membership).data)

    @extend_schema(request=None, responses={202: s.MembershipSerializer})
    @action(detail=True, methods=["post"], url_path="invite-again")
    def invite_again(self, request, id=None):
        """E-mail the invitation again to a member who has not chosen a password yet."""
        try:
            membership = services.resend_invitation(
                tenant=request.tenant, membership_id=id, actor=audit.Actor.from_request(request)
            )
        except Membership.DoesNotExist:
            raise Http404 from None
        return Response(s.MembershipSerializer(membership).data, status=status.HTTP_202_ACCEPTED)

    def destroy(self, request, id=None):
        try:
            services.remove_member(
                tenant=request.tenant, membership_id=id, actor=audit.Actor.from_request(request)
            )
        except Membership.DoesNotExist:
            raise Http404 from None
        return Response(status=status.HTTP_204_NO_CONTENT)


class TokenViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """API tokens. Tokens cannot manage tokens: only a signed-in tenant admin can."""

    serializer_class = s.ApiTokenSerializer
    lookup_field = "public_id"
    lookup_url_kwarg = "id"
    lookup_value_regex = UUID_PATTERN
    read_perm = Perm.MANAGE_TOKENS
    write_perm = Perm.MANAGE_TOKENS

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return ApiToken.objects.none()
        return ApiToken.objects.filter(tenant=self.request.tenant).select_related("created_by")

    @extend_schema(request=s.ApiTokenCreateSerializer, responses={201: s.IssuedTokenSerializer})
    def create(self, request):
        data = s.ApiTokenCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        issued = services.create_token(
            tenant=request.tenant,
            actor=audit.Actor.from_request(request),
            created_by=request.user,
            **data.validated_data,
        )
        body = dict(s.ApiTokenSerializer(issued.token).data, secret=issued.secret)
        return Response(body, status=status.HTTP_201_CREATED, headers={"Cache-Control": "no-store"})

    @extend_schema(request=None, responses={200: s.ApiTokenSerializer})
    def destroy(self, request, id=None):
        """Revoke the token (it stays listed, marked revoked)."""
        try:
            token = services.revoke_token(
                tenant=request.tenant, token_id=id, actor=audit.Actor.from_request(request)
            )
        except ApiToken.DoesNotExist:
            raise Http404 from None
        return Response(s.ApiTokenSerializer(token).data)

    @extend_schema(request=None, responses={201: s.IssuedTokenSerializer})
    @action(detail=True, methods=["post"])
    def rotate(self, request, id=None):
        """Issue a replacement with the same name and scopes and revoke this token."""
        try:
            issued = services.rotate_token(
                tenant=request.tenant,
                token_id=id,
                actor=audit.Actor.from_request(request),
                created_by=request.user,
            )
        except ApiToken.DoesNotExist:
            raise Http404 from None
        body = dict(s.ApiTokenSerializer(issued.token).data, secret=issued.secret)
        return Response(body, status=status.HTTP_201_CREATED, headers={"Cache-Control": "no-store"})


class AuditEventViewSet(viewsets.ReadOnlyModelViewSet):
    """The tenant's audit trail, newest first."""

    serializer_class = s.AuditEventSerializer
    lookup_field = "public_id"
    lookup_url_kwarg = "id"
    lookup_value_regex = UUID_PATTERN
    read_perm = Perm.VIEW_AUDIT

    @extend_schema(
        parameters=[
            OpenApiParameter("action", str, description="action prefix, e.g. `token.`"),
            OpenApiParameter("actor", str, description="part of the actor's name"),
            OpenApiParameter("text", str, description="part of the object's description"),
        ]
    )
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return AuditEvent.objects.none()
        params = self.request.query_params
        filters = {key: params.get(key, "").strip()[:100] for key in ("action", "actor", "text")}
        return audit.events_for(self.request.tenant, **filters)
