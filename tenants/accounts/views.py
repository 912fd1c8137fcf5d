"""Account pages across hosts: sign-in and out, the tenant picker, hand-over, the profile."""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth import login, logout, update_session_auth_hash
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_GET, require_http_methods
from django_otp import login as otp_login
from django_tenants.utils import get_public_schema_name
from redis.exceptions import RedisError

from tenants import audit, links
from tenants.accounts import handoff, services, two_factor, two_factor_views
from tenants.accounts.forms import OwnPasswordForm, PasswordResetForm, SignInCodeForm
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
    device = request.user.otp_device if two_factor.is_verified(request) else None
    ticket = handoff.make_ticket(request.user, membership.tenant, verified_device=device)
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
    device = handoff.verified_device(ticket, request.tenant, user)
    if device is not None:
        user.otp_device = device  # django-otp verifies this session as it signs in
    login(request, user, backend="tenants.accounts.backends.EmailBackend")
    return redirect("home")


def unavailable(request, hint: str):
    return render(request, "503.html", {"hint": hint}, status=503)


def _on_tenant_host(request) -> bool:
    tenant = getattr(request, "tenant", None)
    return tenant is not None and tenant.schema_name != get_public_schema_name()


class SignInView(auth_views.LoginView):
    """Sign-in; on a tenant host it names the tenant and links to the public site's reset.

    Someone with an authenticator app signs in in two steps: the password, then a code
    (`?step=code`), and only then is the session signed in, already verified. The code step also
    verifies a session that is signed in but not verified (begun before the app was set up, or
    handed over from an unverified one).
    """

    def get(self, request, *args, **kwargs):
        if request.GET.get("step") == "code":
            user, _backend, pending = self._code_step_user()
            if user is not None:
                return self._code_page(user, SignInCodeForm(), pending=pending)
        return super().get(request, *args, **kwargs)

    def post(self, request, *args, **kwargs):
        if "code" in request.POST and "password" not in request.POST:
            return self._code_step(request)
        return super().post(request, *args, **kwargs)

    def form_valid(self, form):
        user = form.get_user()
        if two_factor.has_device(user):
            two_factor.start_pending(self.request, user)
            query = urlencode({"step": "code", self.redirect_field_name: self.get_redirect_url()})
            return redirect(f"{self.request.path}?{query}")
        return super().form_valid(form)

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["sign_in_tenant"] = self.request.tenant if _on_tenant_host(self.request) else None
        context["password_reset_url"] = links.password_reset_url()
        return context

    def _code_step_user(self):
        """Whose code this step asks for: (user, backend, pending), or (None, "", False).

        A password just accepted here comes first; else the signed-in person, when they have an
        app and this session is not verified yet.
        """
        user, backend = two_factor.pending_sign_in(self.request)
        if user is not None and two_factor.has_device(user):
            return user, backend, True
        current = self.request.user
        if (
            current.is_authenticated
            and not two_factor.is_verified(self.request)
            and two_factor.has_device(current)
        ):
            return current, "", False
        return None, "", False

    def _code_page(self, user, form, *, pending: bool, status: int = 200):
        """The code step, with `form` (a `SignInCodeForm`)."""
        form.fields["code"].widget.attrs["autofocus"] = True
        context = self.get_context_data(form=form)
        context.update(
            {
                "code_form": form,
                "code_user": user,
                "pending": pending,
                "code_digits": two_factor.CODE_DIGITS,
                "issuer": two_factor.ISSUER,
            }
        )
        return render(self.request, "registration/login_code.html", context, status=status)

    def _code_step(self, request):
        user, backend, pending = self._code_step_user()
        if user is None and two_factor.is_verified(request):
            return redirect(self.get_success_url())  # verified already (e.g. a second tab)
        device = two_factor.confirmed_device(user)
        if device is None:
            two_factor.clear_pending(request)
            messages.error(request, "Your sign-in took too long or changed: please sign in again.")
            return redirect("login")
        form = SignInCodeForm(request.POST)
        if not form.is_valid():
            return self._code_page(user, form, pending=pending, status=400)
        if two_factor.locked_out(request, user):
            # django-axes answers with its lockout page (the request is flagged).
            return self._code_page(user, form, pending=pending, status=429)
        code = form.cleaned_data["code"]
        recovery = two_factor.is_recovery_code(code)
        try:
            device = services.check_sign_in_code(user, code)
        except ValidationError as exc:
            if any(error.code == services.WRONG_CODE for error in exc.error_dict["code"]):
                two_factor.count_failure(request, user)
            for message in exc.messages:
                form.add_error("code", message)
            return self._code_page(user, form, pending=pending, status=400)
        if pending:
            two_factor.clear_pending(request)
            # django-otp verifies the new session as it signs in (and the trail says so).
            user.otp_device = device
            login(request, user, backend=backend or "tenants.accounts.backends.EmailBackend")
        else:
            request.session.cycle_key()  # a verified session is worth more: a new key
            otp_login(request, device)
            tenant = request.tenant if _on_tenant_host(request) else None
            services.note_two_factor_verified(
                user=user, tenant=tenant, actor=audit.Actor.from_request(request)
            )
        if recovery:
            left = services.note_recovery_code_used(
                user=user, actor=audit.Actor.from_request(request)
            )
            messages.warning(
                request,
                f"You signed in with a recovery code; {left} left. "
                + (
                    "Create new ones on your profile now."
                    if left <= 3
                    else "Set up your app again on your profile if your phone is gone."
                ),
            )
        return redirect(self.get_success_url())


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


@sensitive_post_parameters("old_password", "new_password1", "new_password2", "code")
@login_required
@require_http_methods(["GET", "POST"])
def profile(request):
    """One's own account: change the password, two-factor sign-in, memberships, switch tenant."""
    code_forms = {}
    which = request.POST.get("form", "") if request.method == "POST" else ""
    if which in two_factor_views.FORMS:
        outcome = two_factor_views.handle(request, which)
        if isinstance(outcome, HttpResponse):
            return outcome
        code_forms = outcome
    posted = request.method == "POST" and not code_forms
    form = OwnPasswordForm(request, request.POST if posted else None)
    if posted and form.is_valid():
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
    context = {
        "form": form,
        "rows": rows,
        "on_tenant_host": current is not None,
        **two_factor_views.context(request, code_forms),
    }
    refused = form.errors or any(f.errors for f in code_forms.values())
    return render(request, "accounts/profile.html", context, status=400 if refused else 200)
