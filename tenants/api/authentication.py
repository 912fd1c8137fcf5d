"""`Authorization: Bearer <token>` for the tenant whose host the request came to."""

from django_tenants.utils import get_public_schema_name
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from tenants.services import authenticate_token


class ApiTokenAuthentication(authentication.BaseAuthentication):
    keywords = ("bearer", "token")

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].decode("latin1").lower() not in self.keywords:
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed(
                "Authorization header: expected 'Bearer <token>'."
            )
        tenant = getattr(request, "tenant", None)
        if tenant is None or tenant.schema_name == get_public_schema_name():
            raise exceptions.AuthenticationFailed("API tokens are only valid on a tenant's host.")
        token = authenticate_token(header[1].decode("latin1"), tenant)
        if token is None:
            raise exceptions.AuthenticationFailed("Invalid, expired or revoked token.")
        # No user: a token acts as itself, with exactly its scopes.
        from django.contrib.auth.models import AnonymousUser

        return (AnonymousUser(), token)

    def authenticate_header(self, request):
        return 'Bearer realm="api"'


class ApiTokenScheme(OpenApiAuthenticationExtension):
    target_class = "tenants.api.authentication.ApiTokenAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer"}
