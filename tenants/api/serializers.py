"""API representations, and API input validated by the very forms the pages use.

A write serializer names its form (`form_class`); the form cleans the input and its errors come
back keyed by field, so a page and an API call refuse the same input with the same message. The
serializer's own declared fields only describe the input for the OpenAPI document.
"""

from __future__ import annotations

from collections.abc import Mapping

from django import forms
from rest_framework import serializers
from rest_framework.settings import api_settings

from tenants import services
from tenants.accounts.users import EMAIL_MAX_LENGTH
from tenants.forms import (
    TOKEN_NAME_MAX,
    ChangeRoleForm,
    InviteMemberForm,
    MemberRemovalForm,
    TokenForm,
)
from tenants.models import ApiToken, AuditEvent, Membership
from tenants.roles import Role, TokenScope


def _type_errors(form_class: type[forms.Form], data: Mapping) -> dict[str, list[str]]:
    """JSON values of the wrong type: a form would quietly turn `["x"]` or `5` into text."""
    errors = {}
    for name, field in form_class.base_fields.items():
        value = data.get(name)
        if value is None:
            continue
        if isinstance(field, forms.MultipleChoiceField):
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                errors[name] = ["Send a list of strings."]
        elif not isinstance(value, str):
            errors[name] = ["Send a string."]
    return errors


class FormSerializer(serializers.Serializer):
    """Input checked by `form_class`; `validated_data` is the form's `cleaned_data`.

    With `partial=True` only the fields sent are checked and returned.
    """

    form_class: type[forms.Form]

    def form_kwargs(self) -> dict:
        return self.context.get("form_kwargs", {})

    def to_internal_value(self, data):
        if not isinstance(data, Mapping):
            raise serializers.ValidationError(
                {api_settings.NON_FIELD_ERRORS_KEY: ["Send a JSON object."]}
            )
        # Form-encoded API calls arrive as a QueryDict, which forms read natively.
        if not hasattr(data, "getlist"):
            type_errors = _type_errors(self.form_class, data)
            if type_errors:
                raise serializers.ValidationError(type_errors)
            data = {name: value for name, value in data.items() if value is not None}
        form = self.form_class(data=data, **self.form_kwargs())
        if self.partial:
            for name in list(form.fields):
                if name not in data:
                    del form.fields[name]
        if not form.is_valid():
            raise serializers.ValidationError(
                {
                    (api_settings.NON_FIELD_ERRORS_KEY if name == "__all__" else name): errors
                    for name, errors in form.errors.items()
                }
            )
        return dict(form.cleaned_data)


class MembershipSerializer(serializers.ModelSerializer):
    """A member as this tenant sees them: nothing learnt from the account's other tenants."""

    id = serializers.UUIDField(source="public_id", read_only=True)
    email = serializers.EmailField(source="user.email", read_only=True)
    name = serializers.SerializerMethodField(
        help_text="The person's name once they have joined this tenant; empty before."
    )

    class Meta:
        model = Membership
        fields = ["id", "email", "name", "role", "created_at", "joined_at"]
        read_only_fields = ["joined_at"]

    def get_name(self, membership: Membership) -> str:
        # Before the first sign-in here the name would come from the account's life elsewhere.
        return membership.user.get_full_name() if membership.joined_at else ""


class MemberInviteSerializer(FormSerializer):
    form_class = InviteMemberForm
    email = serializers.EmailField(max_length=EMAIL_MAX_LENGTH)
    role = serializers.ChoiceField(choices=Role.choices)


class MemberRoleSerializer(FormSerializer):
    form_class = ChangeRoleForm
    role = serializers.ChoiceField(choices=Role.choices)


class MemberRemovalSerializer(FormSerializer):
    """Pass `context={"form_kwargs": {"tokens": <the member's live tokens>}}`."""

    form_class = MemberRemovalForm
    rotate_tokens = serializers.ListField(
        child=serializers.UUIDField(), required=False, help_text="Tokens to replace."
    )
    revoke_tokens = serializers.ListField(
        child=serializers.UUIDField(), required=False, help_text="Tokens to revoke."
    )


class _TokenListSerializer(serializers.ListSerializer):
    """Looks up whose creators are still members once for the whole page, not once per row."""

    def to_representation(self, data):
        tokens = list(data.all() if hasattr(data, "all") else data)
        removed = services.creators_removed(tokens)
        for token in tokens:
            token.creator_removed = token.pk in removed
        return super().to_representation(tokens)


class ApiTokenSerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="public_id", read_only=True)
    created_by = serializers.EmailField(
        source="created_by.email", read_only=True, default=None, allow_null=True
    )
    creator_removed = serializers.SerializerMethodField(
        help_text="The person who created the token is no longer a member (it still works)."
    )

    class Meta:
        model = ApiToken
        fields = [
            "id",
            "name",
            "prefix",
            "scopes",
            "created_by",
            "creator_removed",
            "created_at",
            "expires_at",
            "last_used_at",
            "revoked_at",
        ]
        list_serializer_class = _TokenListSerializer

    def get_creator_removed(self, token: ApiToken) -> bool:
        if not hasattr(token, "creator_removed"):
            token.creator_removed = token.pk in services.creators_removed([token])
        return token.creator_removed


class ApiTokenCreateSerializer(FormSerializer):
    form_class = TokenForm
    name = serializers.CharField(max_length=TOKEN_NAME_MAX)
    scopes = serializers.ListField(
        child=serializers.ChoiceField(choices=TokenScope.choices), allow_empty=False
    )
    expires_at = serializers.DateTimeField(required=False, allow_null=True)


class IssuedTokenSerializer(ApiTokenSerializer):
    secret = serializers.CharField(read_only=True, help_text="Shown once; store it now.")

    class Meta(ApiTokenSerializer.Meta):
        fields = [*ApiTokenSerializer.Meta.fields, "secret"]


class AuditEventSerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="public_id", read_only=True)

    class Meta:
        model = AuditEvent
        fields = [
            "id",
            "seq",
            "occurred_at",
            "actor_kind",
            "actor_label",
            "action",
            "object_type",
            "object_id",
            "object_repr",
            "before",
            "after",
            "remote_addr",
        ]
