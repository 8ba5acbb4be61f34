"""factory_boy factories of the reviews app. Comments and flags are made through the services, on a published
original by default (anyone may comment on it or flag it)."""

from __future__ import annotations

import factory

from apps.accounts.tests.factories import UserFactory
from apps.registry.tests.factories import make_original
from apps.reviews.choices import FlagKind
from apps.reviews.models import Comment, Flag


def published_original(n: int):  # type: ignore[no-untyped-def]
    return make_original(UserFactory(username="factory-maintainer", roles=["maintainer"]), name=f"reviewed-{n}")


class CommentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Comment

    variant = factory.Sequence(published_original)
    author = factory.SubFactory(UserFactory)
    body = "Looks sound; the card could say more about the evaluation."

    @classmethod
    def _create(cls, model_class, *args, **kwargs):  # type: ignore[no-untyped-def]
        from apps.reviews.services import comment_create

        return comment_create(**kwargs)


class FlagFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Flag

    variant = factory.Sequence(published_original)
    reporter = factory.SubFactory(UserFactory)
    kind = FlagKind.MISLEADING_CARD
    description = "The card claims results the variant has no job for."
    evidence_excerpt = "Reaches 99% accuracy on every benchmark."

    @classmethod
    def _create(cls, model_class, *args, **kwargs):  # type: ignore[no-untyped-def]
        from apps.reviews.services import flag_create

        return flag_create(**kwargs)
