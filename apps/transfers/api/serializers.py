"""Representations of files and upload sessions, and the shape of an upload's declaration."""

from __future__ import annotations

from urllib.parse import quote

from rest_framework import serializers

from apps.registry.api.serializers import WeightsHeaderSerializer
from apps.registry.choices import ArtifactFormat
from apps.registry.models import Artifact
from apps.transfers.choices import UploadStatus
from apps.transfers.models import UploadSession


class FileSerializer(serializers.ModelSerializer):
    """A file of a revision (SPEC §3 `file`: path, size_bytes, sha256, format)."""

    stored = serializers.SerializerMethodField(help_text="True when the bytes are in platform storage.")
    download_url = serializers.SerializerMethodField(
        help_text="Where to GET the bytes (Range, ETag and If-None-Match honoured); null for a file recorded by "
        "URI only."
    )

    header = WeightsHeaderSerializer(read_only=True, help_text="What a safetensors or GGUF file's header says.")

    class Meta:
        model = Artifact
        fields = ["path", "size_bytes", "sha256", "format", "safe", "stored", "uri", "download_url", "header"]
        read_only_fields = fields

    def get_stored(self, obj: Artifact) -> bool:
        return bool(obj.file)

    def get_download_url(self, obj: Artifact) -> str | None:
        base = self.context.get("files_url")
        return f"{base}{quote(obj.path)}" if obj.file and base else None


class UploadCreateSerializer(serializers.Serializer):
    variant = serializers.CharField(max_length=200, help_text="The variant's full name, owner/name.")
    revision = serializers.IntegerField(
        min_value=1,
        max_value=2**31 - 1,
        required=False,
        help_text="A draft revision number; the current revision by default.",
    )
    path = serializers.CharField(max_length=500, help_text="The file's path inside the model, e.g. model.safetensors.")
    format = serializers.ChoiceField(
        choices=ArtifactFormat.choices, required=False, help_text="Told from the extension when left out."
    )
    size_bytes = serializers.IntegerField(min_value=0, max_value=2**62, help_text="The whole file's size.")
    sha256 = serializers.CharField(min_length=64, max_length=64, help_text="The whole file's sha256, hex.")


class UploadSerializer(serializers.ModelSerializer):
    variant = serializers.CharField(source="revision.variant.full_name", read_only=True)
    revision = serializers.IntegerField(source="revision.number", read_only=True)
    status = serializers.ChoiceField(choices=UploadStatus.choices, read_only=True)
    artifact = serializers.IntegerField(source="artifact_id", read_only=True, allow_null=True)

    class Meta:
        model = UploadSession
        fields = [
            "id",
            "variant",
            "revision",
            "path",
            "format",
            "size_bytes",
            "sha256",
            "offset",
            "status",
            "failure",
            "artifact",
            "created_at",
            "expires_at",
        ]
        read_only_fields = fields
