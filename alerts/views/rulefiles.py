"""Rules as code on the pages: download the rule file; upload one, look at what it would add,
change and remove, then apply it. The uploaded file waits in the cache under a random token
(for its uploader, in this tenant) between the preview and the apply."""

from __future__ import annotations

import contextlib
import secrets

from django import forms
from django.contrib import messages
from django.core.cache import cache
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET
from redis.exceptions import RedisError

from alerts.rulefile_import import (
    MAX_FILE_BYTES,
    RuleFileError,
    StalePlan,
    apply_import,
    export_rule_file,
    parse_rule_file,
    plan_import,
)
from alerts.views.common import actor, require_edit
from tenants.pages.decorators import require_perm
from tenants.roles import Perm

PENDING_SECONDS = 1800


class RuleFileUploadForm(forms.Form):
    file = forms.FileField(label="Rule file (YAML)", required=False)
    text = forms.CharField(
        label="…or paste it here",
        required=False,
        strip=False,
        max_length=MAX_FILE_BYTES,
        widget=forms.Textarea(attrs={"rows": 8, "spellcheck": "false"}),
    )
    remove_missing = forms.BooleanField(
        label="Remove enabled rules that are not in the file",
        required=False,
        initial=True,
    )

    def clean(self):
        data = super().clean()
        upload = data.get("file")
        if upload is not None:
            if upload.size > MAX_FILE_BYTES:
                self.add_error("file", f"The file is larger than {MAX_FILE_BYTES // 1024} KiB.")
                return data
            data["content"] = upload.read()
        elif data.get("text", "").strip():
            data["content"] = data["text"]
        elif not self.errors:
            self.add_error("file", "Choose a rule file or paste one.")
        return data


def _key(token: str) -> str:
    # Django cache keys carry the tenant's schema (django_tenants.cache.make_key).
    return f"rulefile-import:{token}"


@require_perm(Perm.VIEW_ALERTS)
@require_GET
def rulefile_export(request):
    text = export_rule_file(request.tenant.name)
    response = HttpResponse(text, content_type="application/yaml; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{request.tenant.slug}-rules.yml"'
    return response


def _render_upload(request, form, errors=(), status=200):
    context = {"form": form, "errors": list(errors)}
    return render(request, "alerts/rulefile_import.html", context, status=status)


@require_perm(Perm.VIEW_ALERTS)
def rulefile_import(request):
    """Upload (or paste) a rule file: checked at once, then shown as a plan to confirm."""
    require_edit(request)
    if request.method != "POST":
        return _render_upload(request, RuleFileUploadForm())
    form = RuleFileUploadForm(request.POST, request.FILES)
    if not form.is_valid():
        return _render_upload(request, form, status=400)
    content = form.cleaned_data["content"]
    remove_missing = form.cleaned_data["remove_missing"]
    try:
        plan = plan_import(
            parse_rule_file(content, schema=request.tenant.schema_name),
            remove_missing=remove_missing,
        )
    except RuleFileError as exc:
        return _render_upload(request, form, exc.errors, status=400)
    if isinstance(content, bytes):
        content = content.decode("utf-8")
    token = secrets.token_urlsafe(24)
    pending = {
        "content": content,
        "user": request.user.pk,
        "remove_missing": remove_missing,
        "digest": plan.digest(),
    }
    try:
        cache.set(_key(token), pending, timeout=PENDING_SECONDS)
    except RedisError:
        return _render_upload(
            request, form, ["The preview cannot be kept right now; try again shortly."], 503
        )
    return redirect("alert-rulefile-preview", token=token)


def _pending(request, token: str) -> dict:
    try:
        pending = cache.get(_key(token))
    except RedisError:
        pending = None
    if not pending or pending.get("user") != request.user.pk:
        raise Http404("This import is not waiting (any more); upload the file again.")
    return pending


@require_perm(Perm.VIEW_ALERTS)
def rulefile_preview(request, token):
    """GET: what the file would change. POST: apply it, if that is still what it would do."""
    require_edit(request)
    pending = _pending(request, token)
    schema = request.tenant.schema_name
    if request.method == "POST":
        try:
            plan = apply_import(
                pending["content"],
                schema=schema,
                actor=actor(request),
                remove_missing=pending["remove_missing"],
                expected_digest=pending["digest"],
            )
        except StalePlan as exc:
            messages.warning(request, " ".join(exc.errors))
            return redirect("alert-rulefile-import")
        except RuleFileError as exc:
            messages.error(request, " ".join(exc.errors[:5]))
            return redirect("alert-rulefile-import")
        # The rules are applied: a cache that cannot be reached only leaves the entry to expire.
        with contextlib.suppress(RedisError):
            cache.delete(_key(token))
        summary = plan.summary()["rules"]
        messages.success(
            request,
            f"Rule file applied: {len(summary['added'])} added, {len(summary['changed'])} "
            f"changed, {len(summary['removed'])} removed. Prometheus gets them within seconds.",
        )
        return redirect("alert-rules")
    try:
        plan = plan_import(
            parse_rule_file(pending["content"], schema=schema),
            remove_missing=pending["remove_missing"],
        )
    except RuleFileError as exc:
        return _render_upload(request, RuleFileUploadForm(), exc.errors, status=400)
    if plan.digest() != pending["digest"]:
        # The rules changed since the upload: what is applied must be what this page shows.
        pending["digest"] = plan.digest()
        try:
            cache.set(_key(token), pending, timeout=PENDING_SECONDS)
        except RedisError:
            raise Http404("This import cannot be kept right now; upload the file again.") from None
    context = {"plan": plan, "summary": plan.summary(), "token": token}
    return render(request, "alerts/rulefile_preview.html", context)
