"""The `seed_demo` command (what `make seed` and `make run` call) is found in apps.demo and seeds the demo world."""

from io import StringIO

import pytest
from django.core.management import call_command, get_commands

from apps.accounts.models import User
from apps.registry.models import Variant

pytestmark = pytest.mark.django_db


def test_seed_demo_is_the_demo_apps_command():
    assert get_commands()["seed_demo"] == "apps.demo"


def test_seed_demo_without_runs_seeds_accounts_and_variants_and_says_so():
    out = StringIO()
    call_command("seed_demo", "--no-runs", stdout=out)
    text = out.getvalue()
    assert text.startswith("demo ready: ") and "digits" in text and "demo jobs" not in text
    assert set(User.objects.values_list("username", flat=True)) >= {"maintainer", "reviewer1", "reviewer2", "alice"}
    assert Variant.objects.by_full_name("alice/digits-mlp-int8").exists()
    assert f"{Variant.objects.count()} variants" in text


def test_seed_demo_makes_commons_an_org_of_the_maintainers_and_a_demo_lab():
    from apps.orgs.models import Invitation, Membership

    out = StringIO()
    call_command("seed_demo", "--no-runs", stdout=out)
    call_command("seed_demo", "--no-runs", stdout=StringIO())  # idempotent
    assert "demo organizations: commons, harbour-lab" in out.getvalue()

    def roles(org: str) -> dict[str, str]:
        return dict(Membership.objects.filter(org__name=org).values_list("user__username", "role"))

    assert roles("commons") == {"maintainer": "admin"}
    assert roles("harbour-lab") == {"alice": "admin", "bob": "member"}
    pending = Invitation.objects.get(org__name="harbour-lab", status="pending")
    assert pending.invitee.username == "reviewer1"
