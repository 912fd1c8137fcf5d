"""URLs of the public site (the bare base domain): sign-in, tenant picker, platform admin."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import path

from alerts import hooks
from tenants.accounts import views as accounts
from tenants.pages import home

urlpatterns = [
    path("", accounts.tenant_picker, name="home"),
    path("go/<slug:slug>/", accounts.enter_tenant, name="enter-tenant"),
    path("accounts/login/", accounts.SignInView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/signed-out/", accounts.signed_out, name="signed-out"),
    path("accounts/profile/", accounts.profile, name="profile"),
    path("accounts/password-reset/", accounts.PasswordResetView.as_view(), name="password_reset"),
    path(
        "accounts/password-reset/sent/",
        auth_views.PasswordResetDoneView.as_view(),
        name="password_reset_done",
    ),
    path(
        "accounts/reset/<uidb64>/<token>/",
        auth_views.PasswordResetConfirmView.as_view(),
        name="password_reset_confirm",
    ),
    path(
        "accounts/reset/done/",
        auth_views.PasswordResetCompleteView.as_view(),
        name="password_reset_complete",
    ),
    path("admin/", admin.site.urls),
    path("healthz", home.healthz, name="healthz"),
    path("favicon.ico", home.favicon, name="favicon"),
    path("hooks/alertmanager/<uuid:tenant_id>/", hooks.alert_intake, name="alert-intake"),
    path(
        "hooks/alertmanager/<uuid:tenant_id>/relay/<uuid:receiver_id>/",
        hooks.relay,
        name="alert-relay",
    ),
]
