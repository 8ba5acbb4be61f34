"""factory_boy factories of the benchmarks app."""

from __future__ import annotations

import factory

from apps.benchmarks.models import Benchmark

ACCURACY = [
    {"name": "accuracy", "higher_is_better": True, "primary": True},
    {"name": "latency_ms", "higher_is_better": False, "primary": False},
]


class BenchmarkFactory(factory.django.DjangoModelFactory):
    """A benchmark on the dependency-free `noop` runner unless told otherwise."""

    class Meta:
        model = Benchmark
        django_get_or_create = ("slug",)

    slug = factory.Sequence(lambda n: f"bench-{n}")
    name = factory.LazyAttribute(lambda o: o.slug.title())
    version = "1"
    runner = "noop"
    task = "image-classification"
    metrics = factory.LazyFunction(lambda: [dict(m) for m in ACCURACY])
