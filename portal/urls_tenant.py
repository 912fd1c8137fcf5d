"""URLs of a tenant host (<slug>.<base domain>); every page is for the tenant's members only."""

from django.urls import include, path

from tenants.accounts import views as accounts
from tenants.admin_site import tenant_admin_site
from tenants.api.docs import TenantDocsView, TenantSchemaView
from tenants.pages import audit, home, members, settings, tokens

urlpatterns = [
    path("", home.home, name="home"),
    path("accounts/login/", accounts.SignInView.as_view(), name="login"),
    path("accounts/logout/", accounts.TenantSignOutView.as_view(), name="logout"),
    path("accounts/handoff/", accounts.redeem_handoff, name="handoff"),
    path("accounts/profile/", accounts.profile, name="profile"),
    path("members/", members.members, name="members"),
    path("members/<uuid:membership_id>/role/", members.member_change_role, name="member-role"),
    path("members/<uuid:membership_id>/remove/", members.member_remove, name="member-remove"),
    path(
        "members/<uuid:membership_id>/invite-again/",
        members.member_resend_invitation,
        name="member-resend-invitation",
    ),
    path("settings/", settings.tenant_settings, name="tenant-settings"),
    path("tokens/", tokens.tokens, name="tokens"),
    path("tokens/issued/", tokens.token_issued, name="token-issued"),
    path("tokens/<uuid:token_id>/revoke/", tokens.token_revoke, name="token-revoke"),
    path("tokens/<uuid:token_id>/rotate/", tokens.token_rotate, name="token-rotation"),
    path("audit/", audit.audit_trail, name="audit"),
    path("audit/export.csv", audit.audit_export, name="audit-export"),
    path("", include("dashboards.urls")),
    path("", include("alerts.urls")),
    path("", include("compliance.urls")),
    path("admin/", tenant_admin_site.urls),
    path("api/v1/", include("portal.api_urls")),
    path("api/schema/", TenantSchemaView.as_view(), name="schema"),
    path("api/docs/", TenantDocsView.as_view(url_name="schema"), name="api-docs"),
    path("healthz", home.healthz, name="healthz"),
    path("favicon.ico", home.favicon, name="favicon"),
]
