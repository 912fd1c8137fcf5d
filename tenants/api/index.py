"""`/api/v1/`: what the API offers, with links, for the tenant's members and read tokens."""

from __future__ import annotations

from collections.abc import Sequence

from django.http import JsonResponse
from django.urls import Resolver404, resolve, reverse
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.routers import BaseRouter
from rest_framework.views import APIView

from tenants.api.viewsets import NOT_FOUND
from tenants.roles import Perm


class ApiIndexSerializer(serializers.Serializer):
    resources = serializers.DictField(
        child=serializers.URLField(), help_text="Each resource's name and collection URL."
    )
    schema = serializers.URLField(help_text="The OpenAPI document of this API.")
    docs = serializers.URLField(help_text="Interactive documentation (Swagger UI).")


class ApiIndexView(APIView):
    """Links to every resource of the API, its schema and its documentation."""

    action_permissions = {"get": Perm.VIEW_TENANT}
    routers: Sequence[BaseRouter] = ()

    @extend_schema(responses=ApiIndexSerializer, operation_id="api_index")
    def get(self, request):
        def url(name: str) -> str:
            return request.build_absolute_uri(reverse(name))

        resources = {
            prefix: url(f"{basename}-list")
            for router in self.routers
            for prefix, _viewset, basename in router.registry
        }
        return Response({"resources": resources, "schema": url("schema"), "docs": url("api-docs")})


# Nothing happens here whatever the method, so there is nothing for CSRF to protect; without
# the exemption a POST to a mistyped path would get Django's HTML CSRF page instead of this 404.
@csrf_exempt
def api_not_found(request, *args, **kwargs) -> JsonResponse:
    """Any other path under the API: a JSON 404 (never an HTML page), with a hint for a lost `/`."""
    body = {"detail": NOT_FOUND}
    if not request.path_info.endswith("/"):
        try:
            match = resolve(request.path_info + "/")
        except Resolver404:
            match = None
        if match is not None and match.url_name != "api-not-found":
            body["detail"] = f"Not found. API paths end with a slash: {request.path_info}/"
    return JsonResponse(body, status=404)
