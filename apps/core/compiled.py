r"""Hot single-row reads compiled once: the SQL of a queryset is built by Django's compiler once per process and
database, then run with each call's values.

Issue 16's profiles showed the ORM spending more time building and compiling a wide joined read (a job with the
columns its representation shows, a revision with its variant, owner and revisions) than PostgreSQL spends running
it: 1-1.3 ms of a 5 ms request. SQLAlchemy answers this with its compiled cache; Django has none. `CompiledQuery`
keeps what Django's `ModelIterable` derives from the compiler (the SQL, the selected columns, the converters' input,
the related-object populators) and reuses it, so a call costs one execute and the rows' conversion.

What it supports: a model queryset (no `.values()`), filtered by values given per call, with `select_related`,
`only()`/`defer()` and annotations; no `prefetch_related` (a caller prefetches on the rows it got, with
`prefetch_related_objects`). It is compiled with a marker in place of each value, and each marker must come out of
the compiler unchanged (or escaped as the database's `iexact` escapes it: SQLite escapes `%`, `_` and `\`, which the
string marker carries, and each call's value is escaped the same way), exactly once among the parameters. A lookup
that rewrites its value otherwise (`contains`, `startswith`) fails that check: the query then runs through the ORM
on that database, call after call, so it is never run with a value the lookup would have changed. The result is the
same model instances, with the same deferred fields and cached relations, as iterating the queryset."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from threading import Lock
from typing import Any, Generic, TypeVar

from django.db import connections
from django.db.models import Model, QuerySet
from django.db.models.query import ModelIterable, get_related_populators

M = TypeVar("M", bound=Model)


class Marker:
    """The stand-in for a per-call value: an int (for keys and numbers) or a str (for names). The int must be in
    the range of every integer column (Django turns an out-of-range lookup into an empty result), so it is a small
    positive number; a constant of the query that happened to equal it would make the marker appear twice, and
    the query would run through the ORM."""

    INT = 29_989
    STR = "\x1emc-compiled%marker_{}\\\x1e"  # % _ and \ so that any lookup escaping its value shows

    @classmethod
    def for_int(cls, index: int) -> int:
        return cls.INT - index

    @classmethod
    def for_str(cls, index: int) -> str:
        return cls.STR.format(index)


# psycopg's typed integers (server-side binding): a value outside the column's range is not bound. A plain int
# (client-side binding, SQLite) is held to 64 bits, which is what the databases take.
_INT_BOUNDS = {"Int2": 2**15, "Int4": 2**31, "Int8": 2**63, "int": 2**63}


class _Unchanged(ValueError):
    """A marker did not come out of the compiler as it went in: this query runs through the ORM on this database."""


class _Plan:
    __slots__ = (
        "sql",
        "params",
        "slots",
        "escapes",
        "types",
        "model",
        "init_list",
        "start",
        "end",
        "populators",
        "annotations",
        "converters",
    )

    def __init__(self, queryset: QuerySet[Any], markers: list[Any], alias: str) -> None:
        if queryset._prefetch_related_lookups:  # type: ignore[attr-defined] # private, as the ORM's own
            raise ValueError("CompiledQuery does not prefetch: prefetch on the rows it returns.")
        if queryset._iterable_class is not ModelIterable:
            raise ValueError("CompiledQuery returns model instances: no values() or values_list().")
        compiler = queryset.query.get_compiler(using=alias)
        sql, params = compiler.as_sql()  # also fills compiler.select, klass_info and annotation_col_map
        params = tuple(params)
        slots, escapes = [], []
        # What `iexact` does to its value on this database (nothing on PostgreSQL; SQLite compares with LIKE and
        # escapes % _ and \): a marker that comes out exactly so was an iexact value, and each call's value is
        # escaped the same way. Any other rewrite (contains, startswith...) is not recognised.
        iexact = connections[alias].ops.prep_for_iexact_query
        for marker in markers:
            # isinstance: with server-side binding an integer column's value comes out typed (psycopg's Int4, an
            # int), and each call's value is typed the same way
            escape = None
            found = [i for i, value in enumerate(params) if isinstance(value, type(marker)) and value == marker]
            if not found and isinstance(marker, str) and iexact(marker) != marker:
                escape = iexact
                found = [i for i, value in enumerate(params) if isinstance(value, str) and value == iexact(marker)]
            if len(found) != 1:
                raise _Unchanged(f"A per-call value must appear once in the compiled query (found {len(found)}).")
            slots.append(found[0])
            escapes.append(escape)
        self.sql, self.params, self.slots, self.escapes = sql, params, slots, escapes
        self.types = [type(params[slot]) for slot in slots]
        select, klass_info = compiler.select, compiler.klass_info
        assert klass_info is not None
        self.model = klass_info["model"]
        fields = klass_info["select_fields"]
        self.start, self.end = fields[0], fields[-1] + 1
        self.init_list = [column[0].target.attname for column in select[self.start : self.end]]
        self.populators = get_related_populators(klass_info, select, alias)  # type: ignore[call-arg] # Django 5.2
        self.annotations = dict(compiler.annotation_col_map or {})
        # The columns' converters (JSON, dates, decimals), applied as the compiler's results_iter applies them, with
        # the calling thread's connection.
        self.converters = list(compiler.get_converters([column[0] for column in select[: compiler.col_count]]).items())

    def bind(self, values: tuple[Any, ...]) -> list[Any] | None:
        """The parameters with this call's values; None for an integer out of its column's range (the ORM makes
        that lookup no query at all: the caller asks it)."""
        params = list(self.params)
        for slot, kind, escape, value in zip(self.slots, self.types, self.escapes, values, strict=True):
            bound = _INT_BOUNDS.get(kind.__name__)
            if bound is not None:
                if not -bound <= value < bound:
                    return None
                value = kind(value)
            params[slot] = value if escape is None else escape(value)
        return params

    def run(self, alias: str, params: list[Any]) -> Iterator[Any]:
        connection = connections[alias]
        with connection.cursor() as cursor:  # the wrappers, query logging and counts as for the ORM
            cursor.execute(self.sql, params)
            rows = cursor.fetchall()
        for raw in rows:
            row = list(raw)
            for position, (functions, expression) in self.converters:
                value = row[position]
                for function in functions:
                    value = function(value, expression, connection)
                row[position] = value
            obj = self.model.from_db(alias, self.init_list, row[self.start : self.end])
            for populator in self.populators:
                populator.populate(row, obj)
            for name, position in self.annotations.items():
                setattr(obj, name, row[position])
            yield obj


class CompiledQuery(Generic[M]):
    """`CompiledQuery(lambda key, name: Job.objects.filter(pk=key, name=name), int, str)`, then `query(7, "x")`
    gives the queryset's model instances for those values. `build` is called with one marker per value to compile
    (once per database alias), and with the values themselves where the query runs through the ORM instead."""

    def __init__(self, build: Callable[..., QuerySet[M]], *types: type) -> None:
        if any(t not in (int, str) for t in types):
            raise TypeError("CompiledQuery values are int or str.")
        self.build = build
        self.types = types
        self._plans: dict[tuple[str, str], _Plan | None] = {}
        self._lock = Lock()

    def _plan(self, alias: str) -> _Plan | None:
        key = (alias, connections[alias].vendor)
        if key not in self._plans:
            with self._lock:
                if key not in self._plans:
                    markers = [Marker.for_int(i) if t is int else Marker.for_str(i) for i, t in enumerate(self.types)]
                    try:
                        self._plans[key] = _Plan(self.build(*markers), markers, alias)
                    except _Unchanged:
                        self._plans[key] = None
        return self._plans[key]

    def all(self, *values: Any, using: str = "default") -> list[M]:
        if len(values) != len(self.types):
            raise TypeError(f"{len(self.types)} value(s) expected, {len(values)} given.")
        plan = self._plan(using)
        params = None if plan is None else plan.bind(tuple(values))
        if plan is None or params is None:
            return list(self.build(*values).using(using))
        return list(plan.run(using, params))

    def first(self, *values: Any, using: str = "default") -> M | None:
        """The first row (the queryset should be unique on its values, or ordered and sliced)."""
        return next(iter(self.all(*values, using=using)), None)
