"""Issue 12 on the pages: the variant page shows the public the last published snapshot and none of the newer
draft's jobs; the edit form (which shows the live draft) is its owner's only."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from tests.visibility_world import build_world

pytestmark = pytest.mark.django_db


@pytest.fixture
def world() -> dict[str, Any]:
    return build_world()


def _client(world: dict[str, Any], name: str | None) -> Client:
    client = Client()
    if name:
        client.force_login(world["users"][name])
    return client


def test_the_variant_page_shows_the_public_the_published_snapshot(world):
    private, public = world["private_job"].pk, world["public_job"].pk
    for name in (None, "carol"):
        html = _client(world, name).get("/variants/alice/vis-pub/").content.decode()
        assert "UNREVIEWED" not in html and "unreviewed draft summary" not in html, name
        assert "apache-2.0" in html and "commons/vis-base" in html, name
        assert f"/jobs/{public}/" in html and f"/jobs/{private}/" not in html, name
    own = _client(world, "alice").get("/variants/alice/vis-pub/").content.decode()
    assert "UNREVIEWED" in own and f"/jobs/{private}/" in own


def test_the_edit_form_is_the_owners_only(world):
    assert _client(world, "carol").get("/variants/alice/vis-pub/edit/").status_code == 403
    assert _client(world, "rev").get("/variants/alice/vis-pub/edit/").status_code == 403
    assert _client(world, "alice").get("/variants/alice/vis-pub/edit/").status_code == 200


def test_job_pages_of_a_newer_draft_are_404_to_the_public(world):
    private = world["private_job"].pk
    for name in (None, "carol"):
        client = _client(world, name)
        assert client.get(f"/jobs/{private}/").status_code == 404, name
        assert client.get(f"/jobs/{private}/progress/").status_code == 404, name
    assert _client(world, "alice").get(f"/jobs/{private}/").status_code == 200


def test_the_variant_list_shows_the_public_the_published_licence(world):
    html = Client().get("/variants/").content.decode()
    row = html[html.index("alice/vis-pub") :][:800]
    assert "apache-2.0" in row and "mit" not in row
