"""The registry's admin pages render with filters, search and inlines, and stay read-only."""

import pytest

from apps.registry.models import Artifact, Revision, Variant

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client_seeded(client, digits_world, make_user):
    admin = make_user("root", is_staff=True, is_superuser=True)
    client.force_login(admin)
    return client


@pytest.mark.parametrize(
    "url",
    [
        "/admin/registry/variant/",
        "/admin/registry/variant/?compat=incompatible",
        "/admin/registry/variant/?q=llama",
        "/admin/registry/variant/?relation__exact=merge&status__exact=draft",
        "/admin/registry/revision/?status__exact=submitted",
        "/admin/registry/artifact/?format__exact=gguf",
        "/admin/registry/artifact/?q=safetensors",
        "/admin/registry/variantparent/",
    ],
)
def test_changelists_filter_and_search(admin_client_seeded, url):
    resp = admin_client_seeded.get(url)
    assert resp.status_code == 200, url


def test_filters_select_the_right_rows(admin_client_seeded):
    page = admin_client_seeded.get("/admin/registry/variant/?compat=incompatible").content.decode()
    assert "bob/gemma-2-9b-sql-sft" in page and "commons/gemma-2-9b" not in page


def test_change_pages_show_inlines_and_are_read_only(admin_client_seeded):
    variant = Variant.objects.by_full_name("alice/Mistral-7B-v0.3-ties-merge").get()
    page = admin_client_seeded.get(f"/admin/registry/variant/{variant.pk}/change/").content.decode()
    assert "Parents (lineage)" in page and "bob/Mistral-7B-v0.3-dolly-sft" in page and "Revisions" in page
    assert 'name="name"' not in page  # no editable inputs for the fields
    revision = Revision.objects.get(variant=variant, number=1)
    page = admin_client_seeded.get(f"/admin/registry/revision/{revision.pk}/change/").content.decode()
    assert "model-00001-of-00002.safetensors" in page
    assert admin_client_seeded.get("/admin/registry/variant/add/").status_code == 403
    artifact = Artifact.objects.filter(revision=revision).first()
    resp = admin_client_seeded.post(f"/admin/registry/artifact/{artifact.pk}/delete/", {"post": "yes"})
    assert resp.status_code == 403 and Artifact.objects.filter(pk=artifact.pk).exists()
