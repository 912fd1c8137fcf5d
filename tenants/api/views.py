"""API views for members, tokens and the audit trail; writes go through `tenants.services`."""

from __future__ import annotations

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.response import Response

from tenants import audit, services
from tenants.api import serializers as s
from tenants.api.filters import AUDIT_EVENT_PARAMETERS, audit_event_filters
from tenants.api.viewsets import TenantViewSet
from tenants.models import ApiToken, AuditEvent, Membership
from tenants.roles import Perm

NO_STORE = {"Cache-Control": "no-store"}
MEMBER_REMOVAL = inline_serializer(
    "MemberRemoval",
    {
        "member": s.MembershipSerializer(),
        "revoked": s.ApiTokenSerializer(many=True),
        "rotated": s.IssuedTokenSerializer(many=True),
    },
)


class MemberViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantViewSet):
    """The tenant's members and their roles."""

    model = Membership
    serializer_class = s.MembershipSerializer
    action_permissions = {
        "list": Perm.VIEW_MEMBERS,
        "retrieve": Perm.VIEW_MEMBERS,
        "create": Perm.MANAGE_MEMBERS,
        "partial_update": Perm.MANAGE_MEMBERS,
        "destroy": Perm.MANAGE_MEMBERS,
        "invite_again": Perm.MANAGE_MEMBERS,
        "remove": Perm.MANAGE_MEMBERS,
    }

    def base_queryset(self) -> QuerySet:
        return Membership.objects.select_related("user")

    @extend_schema(
        request=s.MemberInviteSerializer,
        responses={201: s.MembershipSerializer},
        description="Adds the person (creating their account if needed) and e-mails them.",
    )
    def create(self, request):
        data = self.validated(s.MemberInviteSerializer)
        membership = services.add_member(
            tenant=request.tenant, actor=audit.Actor.from_request(request), **data
        )
        return Response(s.MembershipSerializer(membership).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        request=s.MemberRoleSerializer,
        responses={200: s.MembershipSerializer},
        description="Changes the member's role; a tenant always keeps an admin who can sign in.",
    )
    def partial_update(self, request, id=None):
        membership = self.get_object()
        data = self.validated(s.MemberRoleSerializer, partial=True)
        if "role" in data:
            membership = services.change_role(
                tenant=request.tenant,
                membership_id=membership.public_id,
                role=data["role"],
                actor=audit.Actor.from_request(request),
            )
        return Response(s.MembershipSerializer(membership).data)

    @extend_schema(request=None, responses={202: s.MembershipSerializer})
    @action(detail=True, methods=["post"], url_path="invite-again")
    def invite_again(self, request, id=None):
        """E-mail the invitation again to a member who has not chosen a password yet."""
        membership = services.resend_invitation(
            tenant=request.tenant,
            membership_id=self.object_id(),
            actor=audit.Actor.from_request(request),
        )
        return Response(s.MembershipSerializer(membership).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        request=s.MemberRemovalSerializer,
        responses={200: MEMBER_REMOVAL},
        description=(
            "Removes the member and, in the same step, revokes or rotates live tokens they "
            "created (tokens belong to the tenant and otherwise stay). Rotated tokens' new "
            "secrets are in the answer, once. The tenant's last admin cannot be removed."
        ),
    )
    @action(detail=True, methods=["post"])
    def remove(self, request, id=None):
        membership = self.get_object()
        tokens = services.live_tokens_created_by(request.tenant, membership.user)
        data = self.validated(
            s.MemberRemovalSerializer, context={"form_kwargs": {"tokens": list(tokens)}}
        )
        removal = services.remove_member(
            tenant=request.tenant,
            membership_id=membership.public_id,
            actor=audit.Actor.from_request(request),
            created_by=request.user,
            **data,
        )
        body = {
            "member": s.MembershipSerializer(removal.membership).data,
            "revoked": s.ApiTokenSerializer(removal.revoked, many=True).data,
            "rotated": [
                dict(s.ApiTokenSerializer(issued.token).data, secret=issued.secret)
                for issued in removal.rotated
            ],
        }
        return Response(body, headers=NO_STORE)

    @extend_schema(
        description=(
            "Removes the member; tokens they created stay (see `remove` to revoke or rotate "
            "them). The tenant's last admin cannot be removed."
        )
    )
    def destroy(self, request, id=None):
        services.remove_member(
            tenant=request.tenant,
            membership_id=self.object_id(),
            actor=audit.Actor.from_request(request),
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


class TokenViewSet(mixins.ListModelMixin, TenantViewSet):
    """API tokens. Tokens cannot manage tokens: only a signed-in tenant admin can."""

    model = ApiToken
    serializer_class = s.ApiTokenSerializer
    action_permissions = {
        "list": Perm.MANAGE_TOKENS,
        "create": Perm.MANAGE_TOKENS,
        "destroy": Perm.MANAGE_TOKENS,
        "rotate": Perm.MANAGE_TOKENS,
    }

    def base_queryset(self) -> QuerySet:
        return ApiToken.objects.select_related("created_by")

    @extend_schema(request=s.ApiTokenCreateSerializer, responses={201: s.IssuedTokenSerializer})
    def create(self, request):
        data = self.validated(s.ApiTokenCreateSerializer)
        issued = services.create_token(
            tenant=request.tenant,
            actor=audit.Actor.from_request(request),
            created_by=request.user,
            **data,
        )
        body = dict(s.ApiTokenSerializer(issued.token).data, secret=issued.secret)
        return Response(body, status=status.HTTP_201_CREATED, headers=NO_STORE)

    @extend_schema(request=None, responses={200: s.ApiTokenSerializer})
    def destroy(self, request, id=None):
        """Revoke the token (it stays listed, marked revoked)."""
        token = services.revoke_token(
            tenant=request.tenant,
            token_id=self.object_id(),
            actor=audit.Actor.from_request(request),
        )
        return Response(s.ApiTokenSerializer(token).data)

    @extend_schema(request=None, responses={201: s.IssuedTokenSerializer})
    @action(detail=True, methods=["post"])
    def rotate(self, request, id=None):
        """Issue a replacement with the same name and scopes and revoke this token."""
        issued = services.rotate_token(
            tenant=request.tenant,
            token_id=self.object_id(),
            actor=audit.Actor.from_request(request),
            created_by=request.user,
        )
        body = dict(s.ApiTokenSerializer(issued.token).data, secret=issued.secret)
        return Response(body, status=status.HTTP_201_CREATED, headers=NO_STORE)


class AuditEventViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantViewSet):
    """The tenant's audit trail, newest first."""

    model = AuditEvent
    serializer_class = s.AuditEventSerializer
    action_permissions = {"list": Perm.VIEW_AUDIT, "retrieve": Perm.VIEW_AUDIT}

    @extend_schema(parameters=AUDIT_EVENT_PARAMETERS)
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    def base_queryset(self) -> QuerySet:
        filters = audit_event_filters(self.request) if self.action == "list" else {}
        return audit.events_for(self.request.tenant, **filters)
