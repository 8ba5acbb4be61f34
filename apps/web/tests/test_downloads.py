"""The variant page shows the variant's download count (written in bulk by apps.transfers.downloads)."""

import pytest

from apps.registry.models import Variant
from apps.registry.tests.factories import make_original
from apps.transfers import downloads

pytestmark = pytest.mark.django_db


def test_the_variant_page_shows_downloads(client, maintainer, settings):
    settings.MC_DOWNLOADS_REDIS_URL = ""  # this test's own in-process counts
    base = make_original(maintainer)
    for _ in range(3):
        downloads.download_recorded(base.pk)
    downloads.downloads_flush()
    assert Variant.objects.get(pk=base.pk).downloads == 3
    page = client.get("/variants/commons/base-model/")
    assert page.status_code == 200
    assert '<dd data-testid="variant-downloads">3</dd>' in page.content.decode()


def test_the_variant_page_links_stored_files_and_gives_snippets(client, alice, maintainer, settings):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from apps.registry.services import artifact_add
    from apps.registry.tests.factories import make_variant, record
    from apps.transfers.tests.conftest import safetensors_bytes

    base = make_original(maintainer)
    draft = make_variant(alice, "tiny-gen", [base], task="text-generation")
    weights = safetensors_bytes(3000)
    artifact_add(
        revision=draft.current_revision,
        actor=alice,
        path="weights/model.safetensors",
        upload=SimpleUploadedFile("model.safetensors", weights),
    )
    record(draft, alice, path="remote.safetensors")
    client.force_login(alice)
    page = client.get("/variants/alice/tiny-gen/").content.decode()
    link = "/api/v1/variants/alice/tiny-gen/revisions/1/files/weights/model.safetensors"
    assert f'href="{link}"' in page and "(recorded by URI)" in page
    assert f'title="{len(weights)} bytes"' in page
    download = client.get(link)
    assert download.status_code == 200 and b"".join(download.streaming_content) == weights
    assert 'snapshot_download("alice/tiny-gen", endpoint="http://testserver")' in page
    assert 'AutoModelForCausalLM.from_pretrained("alice/tiny-gen")' in page
    assert "mc pull alice/tiny-gen --revision main --dir ./tiny-gen" in page
    assert "HF_TOKEN" in page  # a draft: the libraries need a token
    public = client.get("/variants/commons/base-model/").content.decode()
    assert "HF_TOKEN" not in public and 'AutoModel.from_pretrained("commons/base-model")' in public


def test_a_stranger_gets_no_link_to_a_draft(client, alice, bob, maintainer):
    from apps.registry.tests.factories import make_variant

    make_variant(alice, "hidden", [make_original(maintainer)])
    client.force_login(bob)
    assert client.get("/variants/alice/hidden/").status_code == 404
    assert client.get("/api/v1/variants/alice/hidden/revisions/1/files/").status_code == 404
