"""Sign up, log in/out (Django's auth views, our templates) and personal access tokens."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from apps.accounts.choices import TokenScope
from apps.accounts.login_limits import limited_login_view
from apps.accounts.models import PersonalAccessToken
from apps.accounts.roles import is_maintainer
from apps.accounts.services import token_create, token_revoke, user_signup
from apps.core.errors import ValidationFailed

from ..forms import LoginForm, SignupForm, TokenCreateForm, add_service_errors
from . import AuthedRequest, WebRequest

# Django's LoginView; a login refused by login throttling answers 429 with Retry-After, the form saying why.
# Explicit template name: the admin ships its own registration/* templates, which would win otherwise.
login_view = limited_login_view(
    auth_views.LoginView.as_view(authentication_form=LoginForm, template_name="web/auth/login.html")
)


def signup(request: WebRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect("web:dashboard")
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            user = user_signup(
                username=form.cleaned_data["username"],
                email=form.cleaned_data["email"],
                password=form.cleaned_data["password1"],
            )
        except ValidationFailed as exc:
            add_service_errors(form, exc)
        else:
            login(request, user, backend="apps.accounts.backends.LimitedModelBackend")
            messages.success(request, f"Welcome, {user.username}! Your contributor account is ready.")
            return redirect("web:dashboard")
    return render(request, "web/signup.html", {"form": form}, status=400 if form.errors else 200)


@login_required
def tokens(request: AuthedRequest) -> HttpResponse:
    form = TokenCreateForm(request.POST or None)
    created: dict[str, Any] | None = None
    if not is_maintainer(request.user):
        scopes = form.fields["scopes"]
        assert isinstance(scopes, forms.MultipleChoiceField)
        scopes.choices = [c for c in TokenScope.choices if c[0] != TokenScope.ADMIN]
    if request.method == "POST" and form.is_valid():
        try:
            token, raw = token_create(
                user=request.user,
                name=form.cleaned_data["name"],
                scopes=form.cleaned_data["scopes"],
                expires_at=timezone.now() + timedelta(days=form.cleaned_data["expires_in_days"]),
            )
        except ValidationFailed as exc:
            add_service_errors(form, exc, aliases={"expires_at": "expires_in_days"})
        else:
            # Rendered once in this response and never stored: there is no redirect that could show it again.
            created = {"token": token, "raw": raw}
            form = TokenCreateForm()
    rows = PersonalAccessToken.objects.filter(user=request.user).order_by("-created_at")
    return render(
        request,
        "web/tokens.html",
        {"form": form, "tokens": rows, "created": created},
        status=400 if form.errors else 200,
    )


@login_required
@require_POST
def token_revoke_view(request: AuthedRequest, token_id: int) -> HttpResponse:
    token = PersonalAccessToken.objects.filter(user=request.user, pk=token_id).first()
    if token is None:
        raise Http404
    token_revoke(token=token, actor=request.user)
    messages.success(request, f"Token “{token.name}” revoked. Anything using it now gets 401.")
    return redirect("web:tokens")
