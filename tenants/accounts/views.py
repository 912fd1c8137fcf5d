"""Account pages across hosts: sign-in and out, the tenant picker, hand-over, the profile."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import login, logout, update_session_auth_hash
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import redirect, render
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_GET, require_http_methods
from django_tenants.utils import get_public_schema_name
from redis.exceptions import RedisError

from tenants import audit, links
from tenants.accounts import handoff, services
from tenants.accounts.forms import OwnPasswordForm, PasswordResetForm
from tenants.models import Membership
from tenants.slugs import schema_name_for


@login_required
@require_GET
def tenant_picker(request):
    memberships = (
        Membership.objects.filter(user=request.user, tenant__is_active=True)
        .select_related("tenant")
        .order_by("tenant__name")
    )
    return render(request, "tenants/picker.html", {"memberships": memberships})


# GET too: the profile page on a tenant host links here (its forms may not post to another
# origin). That is safe because the tenant host asks the person to confirm the hand-over.
@login_required
@require_http_methods(["GET", "POST"])
def enter_tenant(request, slug: str):
    membership = (
        Membership.objects.filter(
            user=request.user, tenant__schema_name=schema_name_for(slug), tenant__is_active=True
        )
        .select_related("tenant")
        .first()
    )
    if membership is None:
        raise PermissionDenied("You are not a member of this tenant.")
    ticket = handoff.make_ticket(request.user, membership.tenant)
    return redirect(links.tenant_url(membership.tenant, f"/accounts/handoff/?ticket={ticket}"))


@require_http_methods(["GET", "POST"])
def redeem_handoff(request):
    ticket = request.POST.get("ticket") or request.GET.get("ticket", "")
    if request.method == "GET":
        user = handoff.ticket_user(ticket, request.tenant)
        if user is not None:
            context = {"ticket": ticket, "ticket_user": user}
            return render(request, "tenants/handoff.html", context)
    else:
        try:
            user = handoff.redeem_ticket(ticket, request.tenant)
        except RedisError:
            return unavailable(request, "Please sign in on this page directly for now.")
    if user is None:
        messages.error(
            request, "That sign-in link has expired or was already used. Please sign in."
        )
        return redirect("login")
    login(request, user, backend="tenants.accounts.backends.EmailBackend")
    return redirect("home")


def unavailable(request, hint: str):
    return render(request, "503.html", {"hint": hint}, status=503)


def _on_tenant_host(request) -> bool:
    tenant = getattr(request, "tenant", None)
    return tenant is not None and tenant.schema_name != get_public_schema_name()


class SignInView(auth_views.LoginView):
    """Sign-in; on a tenant host it names the tenant and links to the public site's reset."""

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["sign_in_tenant"] = self.request.tenant if _on_tenant_host(self.request) else None
        context["password_reset_url"] = links.password_reset_url()
        return context


class PasswordResetView(auth_views.PasswordResetView):
    form_class = PasswordResetForm
    email_template_name = "registration/password_reset_email.txt"
    subject_template_name = "registration/password_reset_subject.txt"


class TenantSignOutView(auth_views.LogoutView):
    """Sign out of the tenant host, then of the public site (a separate session cookie).

    The page sends the browser on with a meta refresh rather than a redirect: the sign-out form's
    page may only submit to its own origin (CSP form-action), and browsers apply that to the
    redirects after the submission too.
    """

    def post(self, request, *args, **kwargs):
        user = request.user if request.user.is_authenticated else None
        logout(request)
        if user is None:
            return redirect("login")
        continue_url = links.public_sign_out_url(handoff.make_sign_out_ticket(user))
        return render(request, "registration/signing_out.html", {"continue_url": continue_url})


@require_GET
def signed_out(request):
    """The public site's end of a sign-out on a tenant host: ends this host's session too."""
    user_id = handoff.sign_out_ticket_user_id(request.GET.get("ticket", ""))
    if user_id is None:
        if request.user.is_authenticated:
            messages.warning(
                request, "That sign-out link has expired: sign out here to end this session too."
            )
            return redirect("home")
        return redirect("login")
    if request.user.is_authenticated and request.user.pk == user_id:
        logout(request)
    if not request.user.is_authenticated:
        messages.success(request, "You are signed out.")
        return redirect("login")
    # Someone else is signed in in this browser; a ticket of another person never signs them out.
    return redirect("home")


@sensitive_post_parameters("old_password", "new_password1", "new_password2")
@login_required
@require_http_methods(["GET", "POST"])
def profile(request):
    """One's own account: change the password, see memberships and switch tenant."""
    form = OwnPasswordForm(request, request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        try:
            services.change_own_password(
                user=request.user,
                new_password=form.cleaned_data["new_password1"],
                actor=audit.Actor.from_request(request),
            )
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            # The session stays; the person's other sessions (other hosts, devices) end.
            update_session_auth_hash(request, request.user)
            messages.success(request, "Your password was changed.")
            return redirect("profile")
    memberships = (
        Membership.objects.filter(user=request.user)
        .select_related("tenant")
        .order_by("tenant__name")
    )
    current = request.tenant if _on_tenant_host(request) else None
    rows = [
        {
            "membership": membership,
            "is_current": current is not None and membership.tenant_id == current.pk,
            "switch_url": links.enter_tenant_url(membership.tenant.slug),
        }
        for membership in memberships
    ]
    context = {"form": form, "rows": rows, "on_tenant_host": current is not None}
    return render(request, "accounts/profile.html", context, status=400 if form.errors else 200)
