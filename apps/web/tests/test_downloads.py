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
