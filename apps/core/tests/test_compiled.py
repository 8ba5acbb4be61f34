"""CompiledQuery gives what iterating its queryset gives (the same rows, columns, deferred fields, related objects
and converted values) in one query, and never runs a value a lookup would have rewritten."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.models import F

from apps.core.compiled import CompiledQuery, Marker
from apps.core.testing import count_queries, instance_state
from apps.registry.models import Revision, Variant

pytestmark = pytest.mark.django_db


@pytest.fixture
def variants(alice, bob):  # type: ignore[no-untyped-def]
    made = {}
    for owner, name in ((alice, "a_b"), (alice, "axb"), (bob, "a_b"), (alice, "Per%cent")):
        variant = Variant.objects.create(
            owner=owner, name=name, relation="original", license="mit", tags=["t", name], card_data={"k": [1, name]}
        )
        made[(owner.username, name)] = variant
        for number in (1, 2):
            Revision.objects.create(variant=variant, number=number, created_by=owner, metadata={"n": number})
    return made


BY_NAME: CompiledQuery[Revision] = CompiledQuery(
    lambda owner, name, number: (
        Revision.objects.select_related("variant__owner")
        .only("number", "metadata", "variant__name", "variant__tags", "variant__card_data", "variant__owner__username")
        .filter(variant__owner__username__iexact=owner, variant__name__iexact=name, number=number)
        .order_by()
    ),
    str,
    str,
    int,
)


def _orm(owner: str, name: str, number: int) -> list[Revision]:
    return list(
        Revision.objects.select_related("variant__owner")
        .only("number", "metadata", "variant__name", "variant__tags", "variant__card_data", "variant__owner__username")
        .filter(variant__owner__username__iexact=owner, variant__name__iexact=name, number=number)
        .order_by()
    )


@pytest.mark.parametrize(
    "owner,name,number",
    [("alice", "a_b", 1), ("ALICE", "A_B", 2), ("bob", "a_b", 2), ("alice", "per%cent", 1), ("alice", "a_b", 3)],
)
def test_the_same_instances_as_the_orm(variants, owner, name, number) -> None:  # type: ignore[no-untyped-def]
    with count_queries() as queries:
        got = BY_NAME.all(owner, name, number)
    assert len(queries) == 1
    expected = _orm(owner, name, number)
    assert [instance_state(r) for r in got] == [instance_state(r) for r in expected]
    if expected:
        revision = got[0]
        # converted like the ORM's: JSON columns are Python objects, deferred columns load on access
        assert revision.metadata == {"n": number} and revision.variant.card_data["k"][0] == 1
        assert revision.get_deferred_fields() == expected[0].get_deferred_fields() != set()
        with count_queries() as queries:
            assert revision.variant.owner.username.lower() == owner.lower()
        assert len(queries) == 0


def test_a_name_with_wildcards_matches_only_itself(variants) -> None:  # type: ignore[no-untyped-def]
    """`_` and `%` are literal characters of a name, whichever way the database's iexact is written."""
    assert [r.variant.name for r in BY_NAME.all("alice", "a_b", 1)] == ["a_b"]
    assert BY_NAME.all("alice", "a%", 1) == []
    assert BY_NAME.all("alice", "per_cent", 1) == []
    # compiled on every database: SQLite's iexact escapes its value, and each call's value is escaped the same way
    assert BY_NAME._plans[("default", connection.vendor)] is not None


def test_a_rewritten_value_runs_through_the_orm(variants, alice) -> None:  # type: ignore[no-untyped-def]
    """`contains` wraps and escapes its value on every database: never compiled, always right."""
    query: CompiledQuery[Variant] = CompiledQuery(lambda part: Variant.objects.filter(name__contains=part), str)
    assert sorted(v.name for v in query.all("_")) == ["a_b", "a_b"]
    assert [v.name for v in query.all("%")] == ["Per%cent"]
    assert query._plans[("default", connection.vendor)] is None


def test_annotations_and_a_missing_row(variants, alice) -> None:  # type: ignore[no-untyped-def]
    query: CompiledQuery[Revision] = CompiledQuery(
        lambda pk: Revision.objects.annotate(owner_name=F("variant__owner__username")).filter(pk=pk), int
    )
    revision = Revision.objects.filter(variant__owner=alice).first()
    assert revision is not None
    found = query.first(revision.pk)
    assert found is not None and found.owner_name == "alice" and found == revision  # type: ignore[attr-defined]
    assert query.first(-1) is None and query.first(Marker.for_int(0)) is None


def test_a_constant_equal_to_the_marker_is_not_taken_for_it(variants) -> None:  # type: ignore[no-untyped-def]
    query: CompiledQuery[Revision] = CompiledQuery(
        lambda number: Revision.objects.filter(number=number).exclude(pk=Marker.for_int(0)), int
    )
    assert len(query.all(1)) == len(variants)
    assert query._plans[("default", connection.vendor)] is None


def test_what_it_refuses() -> None:
    with pytest.raises(ValueError, match="prefetch"):
        CompiledQuery(lambda pk: Revision.objects.prefetch_related("artifacts").filter(pk=pk), int).all(1)
    with pytest.raises(ValueError, match="model instances"):
        CompiledQuery(lambda pk: Revision.objects.filter(pk=pk).values("id"), int).all(1)  # type: ignore[type-var]
    with pytest.raises(TypeError):
        CompiledQuery(lambda when: Revision.objects.filter(created_at=when), float)
    with pytest.raises(TypeError, match="1 value"):
        CompiledQuery(lambda pk: Revision.objects.filter(pk=pk), int).all(1, 2)


def test_an_integer_out_of_its_columns_range_is_what_the_orm_answers(variants) -> None:  # type: ignore[no-untyped-def]
    query: CompiledQuery[Revision] = CompiledQuery(lambda number: Revision.objects.filter(number=number), int)
    for number in (1, 2**31, -(2**40), 2**70):
        assert sorted(r.pk for r in query.all(number)) == sorted(r.pk for r in Revision.objects.filter(number=number))
    assert len(query.all(2)) == len(variants)
