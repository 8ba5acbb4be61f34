"""factory_boy factories of the transfers app. Upload sessions are opened through the service, into a draft
variant of their creator."""

from __future__ import annotations

import hashlib

import factory

from apps.accounts.tests.factories import UserFactory
from apps.registry.models import Variant
from apps.registry.tests.factories import make_original, make_variant
from apps.transfers.models import UploadSession

CONTENT = b"\x00" * 64


class UploadSessionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = UploadSession
        exclude = ("content",)

    created_by = factory.SubFactory(UserFactory)
    content = CONTENT
    path = factory.Sequence(lambda n: f"weights-{n}.safetensors")
    format = "safetensors"
    size_bytes = factory.LazyAttribute(lambda o: len(o.content))
    sha256 = factory.LazyAttribute(lambda o: hashlib.sha256(o.content).hexdigest())

    @classmethod
    def _create(cls, model_class, *args, **kwargs):  # type: ignore[no-untyped-def]
        from apps.transfers.services import upload_create

        owner = kwargs["created_by"]
        parent = Variant.objects.filter(owner__username="commons", name="upload-base").first() or make_original(
            UserFactory(username="factory-maintainer", roles=["maintainer"]), name="upload-base"
        )
        variant = make_variant(owner, f"upload-target-{UploadSession.objects.count()}", [parent])
        return upload_create(
            actor=owner,
            variant=variant.full_name,
            path=kwargs["path"],
            fmt=kwargs["format"],
            size_bytes=kwargs["size_bytes"],
            sha256=kwargs["sha256"],
        )
