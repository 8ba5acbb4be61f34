"""factory_boy factories of the accounts app: users (with roles) and personal access tokens."""

from __future__ import annotations

from typing import Any

import factory

from apps.accounts.models import PersonalAccessToken, User

PASSWORD = "pw-Secret-123"


class UserFactory(factory.django.DjangoModelFactory):
    """`UserFactory(roles=["maintainer"])` puts the user in the role's group, as a maintainer would."""

    class Meta:
        model = User
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda o: f"{o.username}@example.org")
    password = factory.PostGenerationMethodCall("set_password", PASSWORD)

    @factory.post_generation
    def roles(self, create: bool, extracted: Any, **kwargs: Any) -> None:
        if create and extracted:
            from apps.accounts.services import user_set_roles

            user_set_roles(user=self, roles=list(extracted), actor=None)

    @classmethod
    def _after_postgeneration(cls, instance, create, results=None):  # type: ignore[no-untyped-def]
        if create and results:
            instance.save()


class PersonalAccessTokenFactory(factory.django.DjangoModelFactory):
    """A token minted by the service; its plaintext (never stored) is on `.plaintext`."""

    class Meta:
        model = PersonalAccessToken

    user = factory.SubFactory(UserFactory)
    name = factory.Sequence(lambda n: f"token-{n}")
    scopes = factory.LazyFunction(lambda: ["read"])

    @classmethod
    def _create(cls, model_class, *args, **kwargs):  # type: ignore[no-untyped-def]
        from apps.accounts.services import token_create

        token, plaintext = token_create(**kwargs)
        token.plaintext = plaintext
        return token
