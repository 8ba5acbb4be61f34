"""Files of a revision (list and download) and resumable uploads: validate, call one service, serialize."""

from __future__ import annotations

from typing import Any

from django.http import HttpResponse
from django.http.response import HttpResponseBase
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import permissions, status
from rest_framework.exceptions import UnsupportedMediaType
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.permissions import NO_TOKEN, TokenScopePermission
from apps.accounts.types import signed_in
from apps.core.parsers import JSONParser
from apps.registry.api.serializers import ArtifactSerializer
from apps.registry.services import ARTIFACT_PATH_SCHEMA
from apps.transfers import selectors, services
from apps.transfers.downloads import download_recorded
from apps.transfers.serving import artifact_response

from .authentication import HasWorkerGrantForBlob, WorkerTokenAuthentication
from .serializers import FileSerializer, UploadCreateSerializer, UploadSerializer

CHUNK_TYPE = "application/offset+octet-stream"
READ = {"GET": "read", "HEAD": "read"}


class AnyAcceptMixin:
    """File answers are bytes and errors are problem+json, whatever the client's Accept header says."""

    def perform_content_negotiation(self, request: Request, force: bool = False) -> Any:
        return super().perform_content_negotiation(request, force=True)  # type: ignore[misc]


def _files_url(request: Request, owner: str, name: str, number: int) -> str:
    return request.build_absolute_uri(f"/api/v1/variants/{owner}/{name}/revisions/{number}/files/")


class RevisionFilesView(APIView):
    """The files of a revision: path, size, sha256 and format, by path. A revision the caller may not see (a
    draft, to anyone but the variant's insiders) is a 404."""

    permission_classes = [permissions.AllowAny, *APIView.permission_classes]
    token_scopes = READ

    @extend_schema(responses={200: FileSerializer(many=True)})
    def get(self, request: Request, owner: str, name: str, number: int) -> Response:
        revision = selectors.revision_for_files(request.user, owner=owner, name=name, number=int(number))
        context = {
            "request": request,
            "files_url": _files_url(request, revision.variant.owner.username, revision.variant.name, revision.number),
        }
        return Response(FileSerializer(selectors.revision_artifacts(revision), many=True, context=context).data)


class RevisionFileDownloadView(AnyAcceptMixin, APIView):
    """Download one file of a revision: `Range` (one range: 206, or 416 when unsatisfiable), `ETag` (the
    quoted sha256) with `If-None-Match` (304), `Content-Length`, and a `Content-Disposition` filename. HEAD
    answers the headers alone."""

    permission_classes = [permissions.AllowAny, *APIView.permission_classes]
    token_scopes = READ

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "Range",
                OpenApiTypes.STR,
                OpenApiParameter.HEADER,
                required=False,
                description="bytes=START-END, bytes=START- or bytes=-SUFFIX",
            ),
            OpenApiParameter("If-None-Match", OpenApiTypes.STR, OpenApiParameter.HEADER, required=False),
            OpenApiParameter(
                "path",
                ARTIFACT_PATH_SCHEMA,
                OpenApiParameter.PATH,
                description="The file's path in the revision, e.g. model.safetensors.",
            ),
        ],
        responses={
            (200, "application/octet-stream"): OpenApiTypes.BINARY,
            (206, "application/octet-stream"): OpenApiTypes.BINARY,
            304: OpenApiResponse(description="Not modified: the ETag matches."),
            416: OpenApiResponse(description="Range not satisfiable."),
        },
    )
    def get(self, request: Request, owner: str, name: str, number: int, path: str) -> HttpResponseBase:
        revision = selectors.revision_for_files(request.user, owner=owner, name=name, number=int(number))
        artifact = selectors.stored_artifact_in(revision, path)
        variant_id = revision.variant_id
        return artifact_response(request, artifact, on_download=lambda: download_recorded(variant_id))


class WorkerBlobView(AnyAcceptMixin, APIView):
    """Internal: a worker stages a job's file by its sha256, from any revision (drafts and private ones too), with
    `Authorization: Worker <token>` minted for that blob (apps.transfers.worker_access). No token: 401; a bad or
    expired one: 401; one for another blob: 403; unknown bytes: 404. Answered like a download (Range to resume,
    ETag, a presigned redirect from S3), not counted as one. Not part of the public API schema."""

    authentication_classes = [WorkerTokenAuthentication]
    permission_classes = [HasWorkerGrantForBlob, TokenScopePermission]
    throttle_classes: list[Any] = []  # workers are trusted and fetch in bursts
    token_scopes = {"GET": NO_TOKEN}  # no personal access token opens it, whatever its scopes

    @extend_schema(exclude=True)
    def get(self, request: Request, sha256: str) -> HttpResponseBase:
        return artifact_response(request, selectors.stored_blob(sha256))


class UploadCreateView(APIView):
    """Open a resumable upload of one file into a draft revision; then PATCH its chunks and complete it."""

    permission_classes = [permissions.IsAuthenticated, *APIView.permission_classes]
    parser_classes = [JSONParser]
    token_scopes = {"POST": "write"}

    @extend_schema(request=UploadCreateSerializer, responses={201: UploadSerializer})
    def post(self, request: Request) -> Response:
        incoming = UploadCreateSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        data = incoming.validated_data
        session = services.upload_create(
            actor=signed_in(request.user),
            variant=data["variant"],
            revision=data.get("revision"),
            path=data["path"],
            fmt=data.get("format"),
            size_bytes=data["size_bytes"],
            sha256=data["sha256"],
        )
        response = Response(UploadSerializer(session).data, status=status.HTTP_201_CREATED)
        response["Location"] = f"/api/v1/uploads/{session.pk}/"
        response["Upload-Offset"] = str(session.offset)
        return response


def _with_offset(response: HttpResponseBase, offset: int, size: int) -> HttpResponseBase:
    response["Upload-Offset"] = str(offset)
    response["Upload-Length"] = str(size)
    response["Cache-Control"] = "no-store"
    return response


def _offset_header(request: Request) -> int | None:
    raw = request.headers.get("Upload-Offset", "").strip()
    return int(raw) if raw.isdigit() and len(raw) <= 20 else None


def _content_length(request: Request) -> int | None:
    raw = str(request.META.get("CONTENT_LENGTH") or "").strip()
    return int(raw) if raw.isdigit() and len(raw) <= 20 else None


class UploadDetailView(AnyAcceptMixin, APIView):
    """An upload session of the caller's own. GET or HEAD tell its offset (`Upload-Offset`: resume from there
    after a broken connection); PATCH appends the chunk in the body at `Upload-Offset`."""

    permission_classes = [permissions.IsAuthenticated, *APIView.permission_classes]
    token_scopes = {"GET": "read", "HEAD": "read", "PATCH": "write"}

    @extend_schema(responses={200: UploadSerializer})
    def get(self, request: Request, upload_id: Any) -> HttpResponseBase:
        session = selectors.upload_for_user_or_404(request.user, upload_id)
        if request.method == "HEAD":
            return _with_offset(HttpResponse(status=200), session.offset, session.size_bytes)
        return _with_offset(Response(UploadSerializer(session).data), session.offset, session.size_bytes)

    @extend_schema(
        request={CHUNK_TYPE: OpenApiTypes.BINARY},
        parameters=[
            OpenApiParameter(
                "Upload-Offset",
                OpenApiTypes.INT,
                OpenApiParameter.HEADER,
                required=True,
                description="Where this chunk starts: the session's current offset.",
            )
        ],
        responses={
            200: UploadSerializer,
            410: OpenApiResponse(description="The session expired."),
            411: OpenApiResponse(description="The chunk has no Content-Length."),
        },
    )
    def patch(self, request: Request, upload_id: Any) -> HttpResponseBase:
        session = selectors.upload_for_user_or_404(request.user, upload_id)
        if request.content_type.split(";")[0].strip().lower() != CHUNK_TYPE:
            raise UnsupportedMediaType(request.content_type, detail=f"Send each chunk as {CHUNK_TYPE}.")
        offset = _offset_header(request)
        # The raw body, read in blocks by the service: never request.data or request.body (the whole chunk).
        session = services.upload_append(
            session=session,
            actor=signed_in(request.user),
            offset=offset,
            stream=request._request,
            length=_content_length(request),
        )
        return _with_offset(Response(UploadSerializer(session).data), session.offset, session.size_bytes)


class UploadCompleteView(APIView):
    """Finish an upload: the whole file's sha256 must be the declared one; the file becomes an artifact of the
    revision (201; 200 with the same artifact when it already was)."""

    permission_classes = [permissions.IsAuthenticated, *APIView.permission_classes]
    token_scopes = {"POST": "write"}

    @extend_schema(
        request=None,
        responses={
            201: ArtifactSerializer,
            200: ArtifactSerializer,
            410: OpenApiResponse(description="The session expired."),
        },
    )
    def post(self, request: Request, upload_id: Any) -> Response:
        session = selectors.upload_for_user_or_404(request.user, upload_id)
        artifact, created = services.upload_complete(session=session, actor=signed_in(request.user))
        return Response(
            ArtifactSerializer(artifact).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK
        )
