"""Leaderboards and suites over HTTP: filters, ordering, visibility, roles, errors and query budgets."""

from __future__ import annotations

import pytest

from apps.core.testing import assert_same_query_count, count_queries
from apps.leaderboards import services
from apps.leaderboards.api.serializers import LeaderboardRowSerializer, SuiteRowSerializer

from .factories import make_benchmark, make_result, make_variant

pytestmark = pytest.mark.django_db

BOARD = "/api/v1/leaderboards/bench/"


@pytest.fixture
def bench(db):
    return make_benchmark("bench")


@pytest.fixture
def world(bench, maintainer, alice, bob):
    """Two originals, three published children with different filter columns, and one draft."""
    base = make_variant(maintainer, "base", actor=maintainer, parameters=5000, license="apache-2.0")
    other = make_variant(maintainer, "other", actor=maintainer, parameters=7000, license="mit")
    q8 = make_variant(alice, "base-int8", relation="quantized", parents=(base,), precision="int8", parameters=5000)
    ft = make_variant(bob, "base-ft", relation="finetune", parents=(base,), parameters=5000, license="MIT")
    pruned = make_variant(bob, "other-pruned", relation="pruned", parents=(other,), parameters=3500)
    draft = make_variant(alice, "secret", relation="finetune", parents=(base,), published=False)
    make_result(base, bench, {"accuracy": 0.90, "latency_ms": 4.0}, verified=True)
    make_result(other, bench, {"accuracy": 0.80, "latency_ms": 3.0})
    make_result(q8, bench, {"accuracy": 0.88, "latency_ms": 2.0}, verified=True)
    make_result(ft, bench, {"accuracy": 0.93, "latency_ms": 4.0})
    make_result(pruned, bench, {"accuracy": 0.70, "latency_ms": 1.0})
    make_result(draft, bench, {"accuracy": 0.99, "latency_ms": 0.5})
    return {"base": base, "other": other, "q8": q8, "ft": ft, "pruned": pruned, "draft": draft}


def names(resp):
    assert resp.status_code == 200, resp.json()
    return [row["variant"] for row in resp.json()["results"]]


def test_anyone_reads_a_board_ranked_best_first_with_deltas_against_parents(api, world):
    resp = api.get(BOARD)
    body = resp.json()
    assert names(resp) == ["bob/base-ft", "maintainer/base", "alice/base-int8", "maintainer/other", "bob/other-pruned"]
    assert body["benchmark"] == {
        "slug": "bench",
        "name": "Bench",
        "version": "1",
        "metric": "accuracy",
        "higher_is_better": True,
    }
    first, _, q8 = body["results"][:3]
    assert [r["rank"] for r in body["results"]] == [1, 2, 3, 4, 5]
    assert first["delta_vs_parents"] == {"maintainer/base": 0.03}
    assert q8["delta_vs_parents"] == {"maintainer/base": -0.02}
    assert q8["revision"] == 1 and q8["score"] == 0.88 and q8["verified"] is True and q8["flags"] == []
    assert q8["metrics"] == {"accuracy": 0.88, "latency_ms": 2.0}
    assert body["results"][1]["delta_vs_parents"] == {}
    assert body["next"] is None and body["previous"] is None


def test_rows_carry_every_documented_field(api, world, maintainer):
    row = api.get(BOARD).json()["results"][0]
    assert set(row) == set(LeaderboardRowSerializer().fields)
    assert {"rank", "variant", "revision", "score", "metrics", "verified", "delta_vs_parents", "flags"} <= set(row)
    make_benchmark("other-bench")
    services.suite_create(actor=maintainer, slug="s", name="S", benchmarks=[{"benchmark": "bench"}])
    suite_row = api.get("/api/v1/leaderboards/suites/s/").json()["results"][0]
    assert set(suite_row) == set(SuiteRowSerializer().fields)


def test_unpublished_variants_never_appear_for_anyone(api, world, alice, maintainer, client_for):
    for client in (api, client_for(alice), client_for(maintainer)):
        assert "alice/secret" not in names(client.get(BOARD + "?page_size=100"))


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("relation=quantized", ["alice/base-int8"]),
        ("precision=int8", ["alice/base-int8"]),
        ("license=mit", ["bob/base-ft", "maintainer/other"]),
        ("license=MIT", ["bob/base-ft", "maintainer/other"]),
        (
            "task=image-classification",
            ["bob/base-ft", "maintainer/base", "alice/base-int8", "maintainer/other", "bob/other-pruned"],
        ),
        ("task=text-generation", []),
        ("max_parameters=5000", ["bob/base-ft", "maintainer/base", "alice/base-int8", "bob/other-pruned"]),
        ("max_parameters=4000", ["bob/other-pruned"]),
        ("verified=true", ["maintainer/base", "alice/base-int8"]),
        ("verified=false", ["bob/base-ft", "maintainer/other", "bob/other-pruned"]),
        ("relation=finetune&max_parameters=5000&license=mit", ["bob/base-ft"]),
    ],
)
def test_filters(api, world, query, expected):
    assert names(api.get(f"{BOARD}?{query}")) == expected


@pytest.mark.parametrize(
    "query",
    [
        "verified=maybe",
        "max_parameters=abc",
        "max_parameters=-1",
        "relation=cousin",
        "precision=fp64",
        "page=0",
        "page=abc",
        "page_size=0",
        "verified=true&verified=false",
        "contaminated=2",
        "version=" + "x" * 40,
    ],
)
def test_bad_filters_are_400_problems(api, world, query):
    resp = api.get(f"{BOARD}?{query}")
    assert resp.status_code == 400, resp.content
    assert resp["Content-Type"].startswith("application/problem+json")
    assert resp.json()["errors"]


def test_unknown_board_is_a_404_problem(api, db):
    resp = api.get("/api/v1/leaderboards/nope/")
    assert resp.status_code == 404
    assert resp["Content-Type"].startswith("application/problem+json")
    assert api.get("/api/v1/leaderboards/suites/nope/").status_code == 404


def test_lower_is_better_boards_rank_ascending(api, maintainer):
    make_benchmark("speed", metrics=[{"name": "ms", "higher_is_better": False, "primary": True}])
    from apps.benchmarks.models import Benchmark

    speed = Benchmark.objects.get(slug="speed")
    for name, ms in [("slow", 9.0), ("fast", 1.5), ("mid", 4.0)]:
        make_result(make_variant(maintainer, name, actor=maintainer), speed, {"ms": ms})
    body = api.get("/api/v1/leaderboards/speed/").json()
    assert [(r["variant"], r["rank"]) for r in body["results"]] == [
        ("maintainer/fast", 1),
        ("maintainer/mid", 2),
        ("maintainer/slow", 3),
    ]
    assert body["benchmark"]["higher_is_better"] is False


def test_pages_continue_the_ranking(api, world):
    first = api.get(BOARD + "?page_size=2").json()
    second = api.get(first["next"]).json()
    assert [r["rank"] for r in second["results"]] == [3, 4]
    assert second["previous"] is not None and second["next"] is not None
    last = api.get(second["next"]).json()
    assert [r["rank"] for r in last["results"]] == [5] and last["next"] is None
    assert api.get(BOARD + "?page=50").json()["results"] == []


def test_version_parameter_selects_another_benchmark_version(api, world, bench):
    make_result(world["base"], bench, {"accuracy": 0.5}, version="0")
    assert names(api.get(BOARD + "?version=0")) == ["maintainer/base"]
    assert api.get(BOARD + "?version=0").json()["benchmark"]["version"] == "0"
    assert names(api.get(BOARD + "?version=9")) == []


def test_contaminated_rows_are_marked_and_can_be_hidden(api, world, maintainer):
    services.leaderboard_mark_contaminated(
        variant_id=world["ft"].pk, flag_id=12, benchmark_slug="bench", actor=maintainer
    )
    rows = api.get(BOARD).json()["results"]
    assert rows[0]["variant"] == "bob/base-ft"
    assert rows[0]["contaminated"] is True
    assert rows[0]["flags"] == [{"kind": "contamination", "flag": 12, "benchmark": "bench"}]
    assert "bob/base-ft" not in names(api.get(BOARD + "?contaminated=false"))
    assert names(api.get(BOARD + "?contaminated=true")) == ["bob/base-ft"]


def test_token_without_read_scope_is_refused(world, alice, client_for):
    assert client_for(alice, scopes=("write",)).get(BOARD).status_code == 403
    assert client_for(alice, scopes=("read",)).get(BOARD).status_code == 200


def _publish_many(owner, bench, n, start=0):
    parent = make_variant(owner, f"root-{start}", actor=owner)
    make_result(parent, bench, {"accuracy": 0.5})
    for i in range(n - 1):
        child = make_variant(owner, f"child-{start}-{i}", relation="finetune", parents=(parent,), actor=owner)
        make_result(child, bench, {"accuracy": 0.5 + (i % 40) / 100})


def test_board_query_count_is_the_same_at_1_and_100_rows(maintainer, client_for):
    client = client_for(maintainer)
    client.get("/api/v1/me/")  # the first use of a token records last_used_at
    big = make_benchmark("big")
    _publish_many(maintainer, big, 101, start=1)
    with count_queries() as one:
        body = client.get("/api/v1/leaderboards/big/?page_size=1").json()
    assert len(body["results"]) == 1 and body["results"][0]["delta_vs_parents"]
    with count_queries() as many:
        body = client.get("/api/v1/leaderboards/big/?page_size=100&relation=finetune").json()
    assert len(body["results"]) == 100
    assert all(r["delta_vs_parents"] for r in body["results"])
    assert_same_query_count(one, many)


def test_suite_board_query_count_is_the_same_at_1_and_100_rows(maintainer, client_for):
    client = client_for(maintainer)
    client.get("/api/v1/me/")
    small = make_benchmark("small")
    big = make_benchmark("big")
    services.suite_create(
        actor=maintainer, slug="s100", name="many", benchmarks=[{"benchmark": "big"}, {"benchmark": "small"}]
    )
    _publish_many(maintainer, small, 1, start=0)
    _publish_many(maintainer, big, 101, start=1)
    with count_queries() as one:
        body = client.get("/api/v1/leaderboards/suites/s100/?page_size=1").json()
    assert len(body["results"]) == 1 and body["results"][0]["delta_vs_parents"]
    with count_queries() as many:
        body = client.get("/api/v1/leaderboards/suites/s100/?page_size=100").json()
    assert len(body["results"]) == 100
    assert_same_query_count(one, many)


# --- suite boards ----------------------------------------------------------------------------------------


def test_suite_board_ranks_normalized_scores_and_lists_missing_benchmarks(api, world, maintainer, bench):
    speed = make_benchmark("speed", metrics=[{"name": "ms", "higher_is_better": False, "primary": True}])
    make_result(world["q8"], speed, {"ms": 20.0})
    services.suite_create(
        actor=maintainer,
        slug="core",
        name="Core",
        benchmarks=[
            {"benchmark": "bench", "weight": 1, "baseline": 0.5, "best": 1.0},
            {"benchmark": "speed", "weight": 1, "baseline": 100, "best": 0},
        ],
    )
    body = api.get("/api/v1/leaderboards/suites/core/").json()
    assert body["suite"]["slug"] == "core" and body["suite"]["version"] == 1
    top = body["results"][0]
    assert top["variant"] == "alice/base-int8"
    assert top["score"] == pytest.approx((76 + 80) / 2)
    assert top["complete"] is True and top["missing"] == []
    assert top["metrics"] == {"bench": 76.0, "speed": 80.0}
    assert top["delta_vs_parents"] == {"maintainer/base": pytest.approx((76 + 80) / 2 - 40)}
    by_name = {r["variant"]: r for r in body["results"]}
    assert by_name["maintainer/base"]["missing"] == ["speed"] and by_name["maintainer/base"]["score"] == 40.0
    assert "alice/secret" not in by_name
    assert names(api.get("/api/v1/leaderboards/suites/core/?complete=true")) == ["alice/base-int8"]
    assert names(api.get("/api/v1/leaderboards/suites/core/?relation=pruned")) == ["bob/other-pruned"]


# --- suites CRUD -----------------------------------------------------------------------------------------

SUITE = {
    "slug": "core",
    "name": "Core",
    "description": "The core suite.",
    "benchmarks": [{"benchmark": "bench", "weight": 2, "baseline": 0.1, "best": 1.0}],
}


def test_maintainers_create_suites_others_cannot(api, bench, alice, maintainer, client_for):
    assert api.post("/api/v1/suites/", SUITE, format="json").status_code == 401
    assert client_for(alice).post("/api/v1/suites/", SUITE, format="json").status_code == 403
    resp = client_for(maintainer).post("/api/v1/suites/", SUITE, format="json")
    assert resp.status_code == 201, resp.json()
    body = resp.json()
    assert body["slug"] == "core" and body["version"] == 1 and resp["ETag"]
    assert body["benchmarks"] == [
        {
            "benchmark": "bench",
            "benchmark_version": "1",
            "metric": "accuracy",
            "higher_is_better": True,
            "weight": 2.0,
            "baseline": 0.1,
            "best": 1.0,
        }
    ]
    assert body["leaderboard"] == "/api/v1/leaderboards/suites/core/"
    again = client_for(maintainer).post("/api/v1/suites/", SUITE, format="json")
    assert again.status_code == 400 and "slug" in again.json()["errors"]


def test_suites_are_written_only_with_the_admin_scope(api, bench, maintainer):
    """Issue 12, finding 3: a maintainer's token without `admin` created and changed suites."""
    from apps.accounts.services import token_create

    _, raw = token_create(user=maintainer, name="no-admin", scopes=["read", "write", "jobs", "review"])
    no_admin = {"HTTP_AUTHORIZATION": f"Bearer {raw}"}
    resp = api.post("/api/v1/suites/", SUITE, format="json", **no_admin)
    assert resp.status_code == 403 and "'admin' scope" in resp.json()["detail"]
    _, raw = token_create(user=maintainer, name="admin", scopes=["read", "admin"])
    admin = {"HTTP_AUTHORIZATION": f"Bearer {raw}"}
    assert api.post("/api/v1/suites/", SUITE, format="json", **admin).status_code == 201
    resp = api.patch("/api/v1/suites/core/", {"name": "Renamed"}, format="json", **no_admin)
    assert resp.status_code == 403
    assert api.get("/api/v1/suites/core/", **no_admin).json()["name"] == "Core"
    assert api.patch("/api/v1/suites/core/", {"name": "Renamed"}, format="json", **admin).status_code == 200


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({**SUITE, "benchmarks": []}, "benchmarks"),
        ({**SUITE, "benchmarks": [{"benchmark": "missing"}]}, "benchmarks.0.benchmark"),
        ({**SUITE, "benchmarks": [{"benchmark": "bench", "weight": -1}]}, "benchmarks.0.weight"),
        ({**SUITE, "benchmarks": [{"benchmark": "bench", "baseline": 2, "best": 1}]}, "benchmarks.0.best"),
        ({**SUITE, "benchmarks": "bench"}, "benchmarks"),
        ({**SUITE, "slug": "not a slug"}, "slug"),
        ({"slug": "x"}, "name"),
    ],
)
def test_suite_validation_errors_are_400_with_field_errors(bench, maintainer, client_for, payload, field):
    resp = client_for(maintainer).post("/api/v1/suites/", payload, format="json")
    assert resp.status_code == 400, resp.json()
    assert any(key.startswith(field) for key in resp.json()["errors"]), resp.json()


def test_anyone_reads_suites_and_detail_has_an_etag(api, bench, maintainer):
    services.suite_create(actor=maintainer, slug="core", name="Core", benchmarks=[{"benchmark": "bench"}])
    listing = api.get("/api/v1/suites/").json()
    assert [s["slug"] for s in listing["results"]] == ["core"]
    detail = api.get("/api/v1/suites/core/")
    assert detail.status_code == 200 and detail["ETag"]
    assert api.get("/api/v1/suites/nope/").status_code == 404


def test_patch_needs_a_maintainer_bumps_the_version_and_honours_if_match(api, bench, alice, maintainer, client_for):
    make_benchmark("extra")
    services.suite_create(actor=maintainer, slug="core", name="Core", benchmarks=[{"benchmark": "bench"}])
    etag = api.get("/api/v1/suites/core/")["ETag"]
    assert client_for(alice).patch("/api/v1/suites/core/", {"name": "x"}, format="json").status_code == 403
    client = client_for(maintainer)
    resp = client.patch(
        "/api/v1/suites/core/",
        {"benchmarks": [{"benchmark": "bench"}, {"benchmark": "extra"}]},
        format="json",
        HTTP_IF_MATCH=etag,
    )
    assert resp.status_code == 200, resp.json()
    assert resp.json()["version"] == 2 and len(resp.json()["benchmarks"]) == 2
    stale = client.patch("/api/v1/suites/core/", {"name": "again"}, format="json", HTTP_IF_MATCH=etag)
    assert stale.status_code == 412 and stale["Content-Type"].startswith("application/problem+json")
    assert stale.json()["etag"] == resp["ETag"]
    weak = client.patch("/api/v1/suites/core/", {"name": "again"}, format="json", HTTP_IF_MATCH=f"W/{resp['ETag']}")
    assert weak.status_code == 412  # RFC 9110 §13.1.1: If-Match compares strongly
    assert client.patch("/api/v1/suites/core/", {"slug": "renamed"}, format="json").json()["slug"] == "core"
    assert client.put("/api/v1/suites/core/", SUITE, format="json").status_code == 405


def test_suite_list_query_count_is_flat(maintainer, client_for, bench):
    client = client_for(maintainer)
    client.get("/api/v1/me/")
    services.suite_create(actor=maintainer, slug="s0", name="S", benchmarks=[{"benchmark": "bench"}])
    with count_queries() as one:
        assert len(client.get("/api/v1/suites/").json()["results"]) == 1
    for i in range(1, 12):
        extra = make_benchmark(f"b{i}")
        services.suite_create(
            actor=maintainer, slug=f"s{i}", name="S", benchmarks=[{"benchmark": "bench"}, {"benchmark": extra.slug}]
        )
    with count_queries() as many:
        assert len(client.get("/api/v1/suites/?page_size=100").json()["results"]) == 12
    assert_same_query_count(one, many)
