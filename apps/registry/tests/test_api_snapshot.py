"""Issue 12 over HTTP. Finding 1: a newer draft of a published variant is a 404 to everyone but its insiders.
Finding 2: its unreviewed edits (card, licence, parents) stay out of the public API and card.md until published."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from apps.core.testing import count_queries
from apps.registry.services import revision_create, revision_transition, variant_update
from apps.registry.tests.factories import make_variant, publish_current, record
from tests.visibility_world import SECRET_CARD, SECRET_SUMMARY

pytestmark = pytest.mark.django_db
V = "/api/v1/variants/alice/vis-pub"


def test_the_public_variant_representation_is_the_published_snapshot(vis_clients):
    for role, client in vis_clients.items():
        body = client.get(f"{V}/").json()
        if role in ("anonymous", "other"):
            assert body["license"] == "apache-2.0" and body["summary"] == "public summary", role
            assert body["parents"] == ["commons/vis-base"] and body["precision"] == "fp16", role
            assert body["current_revision"] == 1 and body["status"] == "published", role
            assert "UNREVIEWED" not in body["card"] and body["card_data"].get("license") != "mit", role
        else:
            assert body["license"] == "mit" and body["summary"] == SECRET_SUMMARY, role
            assert body["parents"] == ["commons/vis-other-base"] and body["card"] == SECRET_CARD, role
            assert body["current_revision"] == 2 and body["status"] == "draft", role


def test_the_public_etag_does_not_move_with_draft_edits(vis_world, vis_clients):
    before = vis_clients["anonymous"].get(f"{V}/")["ETag"]
    variant_update(variant=vis_world["pub"], actor=vis_world["users"]["alice"], summary="edited once more")
    assert vis_clients["anonymous"].get(f"{V}/")["ETag"] == before
    assert vis_clients["anonymous"].get(f"{V}/", HTTP_IF_NONE_MATCH=before).status_code == 304


def test_card_md_is_the_published_card_with_published_results(vis_clients):
    public = vis_clients["anonymous"].get(f"{V}/card.md").content.decode()
    assert "UNREVIEWED" not in public and "license: apache-2.0" in public and "commons/vis-base" in public
    assert "0.5" in public and "0.9" not in public  # the draft's verified result stays private
    own = vis_clients["owner"].get(f"{V}/card.md").content.decode()
    assert "UNREVIEWED" in own and "license: mit" in own and "commons/vis-other-base" in own


def test_the_newer_draft_revision_is_a_404_to_the_public(vis_clients):
    for role, client in vis_clients.items():
        insider = role in ("owner", "reviewer", "maintainer")
        assert client.get(f"{V}/revisions/2/").status_code == (200 if insider else 404), role
        numbers = [r["number"] for r in client.get(f"{V}/revisions/").json()["results"]]
        assert numbers == ([1, 2] if insider else [1]), role


def test_list_filters_and_search_see_what_the_reader_sees(vis_clients):
    def names(client: APIClient, query: str) -> set[str]:
        return {v["full_name"] for v in client.get(f"/api/v1/variants/?{query}").json()["results"]}

    for role, client in vis_clients.items():
        insider = role in ("owner", "reviewer", "maintainer")
        assert ("alice/vis-pub" in names(client, "license=mit")) is insider, role
        assert ("alice/vis-pub" in names(client, "license=apache-2.0")) is not insider, role
        assert ("alice/vis-pub" in names(client, "precision=int8")) is insider, role
        assert ("alice/vis-pub" in names(client, "parent=commons/vis-other-base")) is insider, role
        assert ("alice/vis-pub" in names(client, "parent=commons/vis-base")) is not insider, role
        assert ("alice/vis-pub" in names(client, "status=draft")) is insider, role
        if role in ("anonymous", "other"):
            assert names(client, "search=unreviewed") == set(), role
        listed = {v["full_name"]: v for v in client.get("/api/v1/variants/").json()["results"]}
        assert listed["alice/vis-pub"]["license"] == ("mit" if insider else "apache-2.0"), role


def test_publishing_the_draft_makes_its_edits_public(vis_world, vis_clients):
    maint = vis_world["users"]["maint"]
    for target in ("submitted", "approved", "published"):
        revision_transition(revision=vis_world["rev2"], target=target, actor=maint)
    body = vis_clients["anonymous"].get(f"{V}/").json()
    assert body["license"] == "mit" and body["card"] == SECRET_CARD and body["current_revision"] == 2
    assert body["parents"] == ["commons/vis-other-base"]


def test_variant_list_query_count_is_flat_for_snapshots(vis_world, vis_clients):
    """Variants shown as snapshots whose drafts changed their parents cost one query for those parents, whatever
    their number."""
    alice, maint = vis_world["users"]["alice"], vis_world["users"]["maint"]
    for i in range(10):
        variant = make_variant(alice, f"snap-{i}", [vis_world["base"]])
        record(variant, alice)
        publish_current(variant, maint)
        variant.refresh_from_db()
        revision_create(variant=variant, actor=alice)
        variant_update(variant=variant, actor=alice, parents=[vis_world["other_base"].full_name], license="mit")
    for role in ("anonymous", "other", "owner"):
        client = vis_clients[role]
        client.get("/api/v1/variants/?owner=alice&page_size=1")
        counts = {}
        for size in (1, 10):
            with count_queries() as ctx:
                body = client.get(f"/api/v1/variants/?owner=alice&page_size={size}").json()
            assert len(body["results"]) == size
            counts[size] = len(ctx)
            if role != "owner":
                assert all(v["parents"] == ["commons/vis-base"] for v in body["results"]), role
        assert counts[1] == counts[10], (role, counts)
