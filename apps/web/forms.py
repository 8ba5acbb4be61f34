"""Forms for the contributor pages. They check the shape of the input; business rules stay in the services,
whose ValidationFailed errors are put back beside the matching field (`add_service_errors`)."""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from django import forms
from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm, UserCreationForm

from apps.accounts.choices import TokenScope
from apps.accounts.login_limits import LimitedLoginFormMixin
from apps.accounts.models import User
from apps.accounts.namespaces import username_problem
from apps.core.errors import DomainError
from apps.orgs.choices import OrgRole
from apps.registry.choices import PIPELINE_TAGS, ArtifactFormat, Precision, Relation
from apps.reviews.choices import FlagKind


def add_service_errors(form: forms.BaseForm, exc: DomainError, aliases: dict[str, str] | None = None) -> None:
    """Attach a service's `errors: {field: [msgs]}` to the form fields; unknown keys become form-wide errors.

    `aliases` maps a service's field name to the form's where they differ (expires_at -> expires_in_days)."""
    errors = exc.errors or {}
    if not errors:
        form.add_error(None, exc.detail)
        return
    for key, messages in errors.items():
        key = (aliases or {}).get(key, key)
        field = key if key in form.fields else None
        if field is None and "." in key and key.split(".", 1)[0] in form.fields:
            field = key.split(".", 1)[0]
        if field is None and key.startswith("config.") and key.split(".", 1)[1] in form.fields:
            field = key.split(".", 1)[1]
        for message in messages if isinstance(messages, list | tuple) else [messages]:
            text = message if isinstance(message, str) else json.dumps(message)
            if field is not None:
                form.add_error(field, text)
            else:
                form.add_error(None, text if key in ("non_field_errors", "detail", "__all__") else f"{key}: {text}")


class SignupForm(UserCreationForm):
    email = forms.EmailField(required=True, help_text="For password resets and notifications. Never shown.")

    class Meta(UserCreationForm.Meta):
        model = User
        fields = ("username", "email")

    def clean_username(self) -> str:
        # The name space's reasons first (an organization's account holds its name as a user row does).
        problem = username_problem(str(self.cleaned_data.get("username", "")))
        if problem:
            raise forms.ValidationError(problem)
        return str(super().clean_username())


class LoginForm(LimitedLoginFormMixin, AuthenticationForm):
    """Django's login form with the autocomplete hints browsers and password managers use; a login refused by
    login throttling says so."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["username"].widget.attrs["autocomplete"] = "username"
        self.fields["password"].widget.attrs["autocomplete"] = "current-password"


class TokenCreateForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="What uses it, e.g. “training pipeline” or “CI bot”.")
    scopes = forms.MultipleChoiceField(
        choices=TokenScope.choices,
        widget=forms.CheckboxSelectMultiple,
        initial=["read", "write", "jobs"],
        help_text="Give a token only what it needs. “admin” is for maintainers.",
    )
    expires_in_days = forms.IntegerField(
        min_value=1,
        initial=90,
        label="Expires in (days)",
        help_text=f"At most {settings.MC_TOKEN_MAX_TTL_DAYS} days.",
    )


@lru_cache(maxsize=1)
def license_choices() -> list[tuple[str, str]]:
    """The licence ids the registry accepts, for the searchable list (the registry still checks the value)."""
    path = settings.FIXTURES_DIR / "licenses" / "licenses.json"
    try:
        rows = json.loads(path.read_text())["licenses"]
    except (OSError, ValueError, KeyError):
        return []
    return [(row["id"], f"{row['id']} — {row.get('name', '')}") for row in rows]


class VariantProposeForm(forms.Form):
    owner = forms.ChoiceField(
        label="Create in",
        required=False,
        help_text="Your own namespace, or an organization you belong to.",
    )
    name = forms.CharField(
        max_length=96, help_text="Letters, digits, “.”, “_” and “-”. It becomes <em>namespace/name</em>."
    )
    relation = forms.ChoiceField(
        choices=[("", "—")] + [c for c in Relation.choices if c[0] != Relation.ORIGINAL],
        required=False,
        help_text="How this variant derives from its parent(s). Leave “—” to take "
        "<code>base_model_relation</code> from an uploaded README.",
    )
    parents = forms.CharField(
        max_length=1000,
        label="Parent variant(s)",
        required=False,
        help_text="Full names like <code>commons/digits-mlp</code>; separate several (for a merge) with commas. "
        "Suggestions appear as you type.",
        widget=forms.TextInput(attrs={"list": "parent-suggestions", "autocomplete": "off"}),
    )
    license = forms.CharField(
        max_length=64,
        label="Licence",
        required=False,
        help_text="An SPDX or Hugging Face Hub licence id, e.g. <code>apache-2.0</code>. Type to search.",
        widget=forms.TextInput(attrs={"list": "license-options", "autocomplete": "off"}),
    )
    # No bounds here: the registry checks them together with the name, parents and licence, so every problem
    # shows up in one round trip.
    parameters = forms.IntegerField(required=False, help_text="Number of parameters.")
    precision = forms.ChoiceField(choices=[("", "—")] + list(Precision.choices), required=False)
    task = forms.ChoiceField(
        choices=[("", "—")] + [(t, t) for t in PIPELINE_TAGS], required=False, help_text="The Hub pipeline tag."
    )
    architecture = forms.CharField(max_length=100, required=False)
    summary = forms.CharField(max_length=500, required=False, widget=forms.Textarea(attrs={"rows": 2}))
    card = forms.CharField(
        required=False,
        label="Model card (markdown)",
        widget=forms.Textarea(attrs={"rows": 14}),
        help_text=f"At least {settings.MC_MIN_CARD_CHARS} characters before a job can run: intended use, "
        "limitations, training data, evaluation.",
    )
    card_file = forms.FileField(
        required=False,
        label="…or upload a README.md",
        help_text="Replaces the text above. Its Hub front matter (license, base_model, "
        "pipeline_tag, …) fills the fields you leave empty.",
    )

    def __init__(self, *args: Any, namespaces: list[str] | None = None, **kwargs: Any) -> None:
        """`namespaces`: where the user may create, their own first (the registry checks again)."""
        super().__init__(*args, **kwargs)
        owner = self.fields["owner"]
        assert isinstance(owner, forms.ChoiceField)
        owner.choices = [(n, n) for n in namespaces or []]
        if namespaces:
            owner.initial = namespaces[0]

    def clean_card_file(self) -> str | None:
        upload = self.cleaned_data.get("card_file")
        if not upload:
            return None
        if upload.size > 1024 * 1024:
            raise forms.ValidationError("A README larger than 1 MiB is not a model card.")
        try:
            return upload.read().decode("utf-8")
        except UnicodeDecodeError:
            raise forms.ValidationError("The README must be UTF-8 text.")

    def parent_names(self) -> list[str]:
        return [p.strip() for p in self.cleaned_data.get("parents", "").split(",") if p.strip()]


class VariantEditForm(VariantProposeForm):
    """The propose form without the name (variants are never renamed), plus the ETag it was read at."""

    etag = forms.CharField(widget=forms.HiddenInput, required=False)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        del self.fields["name"]
        del self.fields["owner"]


class FlagForm(forms.Form):
    kind = forms.ChoiceField(choices=[("", "—")] + list(FlagKind.choices), required=False, label="Problem")
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}))
    evidence_url = forms.CharField(required=False, label="Evidence URL", max_length=1000)
    evidence_excerpt = forms.CharField(
        required=False,
        label="Evidence excerpt",
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="For contamination: benchmark samples found in the training data.",
    )


class ArtifactUploadForm(forms.Form):
    file = forms.FileField()
    path = forms.CharField(
        max_length=500, required=False, help_text="Path inside the revision; defaults to the file name."
    )
    format = forms.ChoiceField(
        choices=[("", "Detect from the file name")] + list(ArtifactFormat.choices), required=False
    )


def config_form_class(schema: dict[str, Any], defaults: dict[str, Any]) -> type[forms.Form]:
    """Build a form from a benchmark's JSON Schema (flat objects: integer, number, boolean, string, enum).

    The schema itself is enforced by the job service; the form only offers the right inputs."""
    fields: dict[str, forms.Field] = {}
    required = set(schema.get("required", []))
    for key, prop in (schema.get("properties") or {}).items():
        kind = prop.get("type")
        common: dict[str, Any] = {
            "required": key in required and key not in defaults,
            "label": prop.get("title") or key.replace("_", " ").capitalize(),
            "help_text": prop.get("description", ""),
            "initial": defaults.get(key, prop.get("default")),
        }
        if "enum" in prop:
            by_text = {str(v): v for v in prop["enum"]}
            fields[key] = forms.TypedChoiceField(
                choices=[("", "default")] + [(k, k) for k in by_text],
                coerce=lambda text, by_text=by_text: by_text[text],
                empty_value=None,
                **{**common, "required": False},
            )
        elif kind == "integer":
            fields[key] = forms.IntegerField(**common)
        elif kind == "number":
            fields[key] = forms.FloatField(**common)
        elif kind == "boolean":
            fields[key] = forms.BooleanField(**{**common, "required": False})
        else:
            fields[key] = forms.CharField(**common)
    # No min/max here on purpose: out-of-range values go to the service, whose schema errors come back per field.
    return type("BenchmarkConfigForm", (forms.Form,), fields)


# --- Organizations, invitations, transfers and collaborators -------------------------------------------------


class OrgCreateForm(forms.Form):
    name = forms.CharField(
        max_length=40,
        help_text="2 to 40 letters, digits, “-”, “_” and “.”. It becomes the namespace <em>name/variant</em> "
        "and is shared with user names.",
    )
    display_name = forms.CharField(max_length=100, required=False)
    description = forms.CharField(max_length=2000, required=False, widget=forms.Textarea(attrs={"rows": 3}))


class OrgEditForm(forms.Form):
    """An organization's profile. Its name is its namespace and does not change."""

    display_name = forms.CharField(max_length=100, required=False)
    description = forms.CharField(max_length=2000, required=False, widget=forms.Textarea(attrs={"rows": 4}))
    etag = forms.CharField(widget=forms.HiddenInput, required=False)


class OrgDeleteForm(forms.Form):
    confirm = forms.CharField(
        max_length=40,
        label="Type the organization's name to confirm",
        help_text="Its members and pending invitations go with it. An organization that still owns variants "
        "cannot be deleted: transfer or delete them first.",
    )

    def __init__(self, *args: Any, org_name: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.org_name = org_name

    def clean_confirm(self) -> str:
        value = str(self.cleaned_data["confirm"]).strip()
        if value != self.org_name:
            raise forms.ValidationError(f"Type {self.org_name} exactly.")
        return value


class InvitationForm(forms.Form):
    username = forms.CharField(max_length=150, label="Username", help_text="The account to invite.")
    role = forms.ChoiceField(choices=OrgRole.choices, initial=OrgRole.MEMBER)


class TransferForm(forms.Form):
    to = forms.CharField(
        max_length=150,
        label="Transfer to",
        help_text="A user name, or an organization where you may create variants. The old name keeps "
        "redirecting to the new one.",
    )


class CollaboratorForm(forms.Form):
    username = forms.CharField(max_length=150, label="Collaborator's username", help_text="They may edit this variant.")
