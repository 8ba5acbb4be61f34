"""The paths the `huggingface_hub` library (and transformers, sentence-transformers, diffusers, `hf download`
built on it) reads, so that `HF_ENDPOINT=<this server>` and `HF_TOKEN=mc_…` download from the platform:

    GET       /api/models/{owner}/{name}[/revision/{rev}]      model info: sha, siblings, cardData, tags, ...
    GET       /api/models/{owner}/{name}/tree/{rev}[/{path}]   ?recursive=  [{type, path, size, oid, lfs}]
    GET|HEAD  /{owner}/{name}/resolve/{rev}/{path}             the file, with X-Repo-Commit, X-Linked-Etag,
                                                               X-Linked-Size, ETag, Content-Length, Range

Errors are problem+json bodies that also carry what the Hub client reads: `X-Error-Code` (RepoNotFound,
RevisionNotFound, EntryNotFound), `X-Error-Message`, an `error` member, and `X-Repo-Commit` on EntryNotFound
(the client caches that the file does not exist at that commit). They are excluded from the OpenAPI schema: the
contract is the Hub's."""

from __future__ import annotations

from typing import Any

from django.http.response import HttpResponseBase
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, permissions
from rest_framework.authentication import SessionAuthentication, get_authorization_header
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.authentication import TOKEN_PREFIX, BearerTokenAuthentication
from apps.registry.cards import card_metadata
from apps.registry.selectors import parent_visible, variant_as_seen_by
from apps.transfers.downloads import download_recorded
from apps.transfers.serving import artifact_response

from . import selectors

INVALID_CREDENTIALS = "Invalid credentials in Authorization header"


class HubTokenAuthentication(BearerTokenAuthentication):
    """`Bearer mc_…` as everywhere in the API. Another bearer token (the `hf_…` token a Hub client finds in its
    user's environment) is not ours: it is ignored, so public repos still download."""

    def authenticate(self, request: Any) -> Any:
        header = get_authorization_header(request).split()
        if len(header) == 2 and header[0].lower() == b"bearer" and not header[1].startswith(TOKEN_PREFIX.encode()):
            return None
        return super().authenticate(request)


def _header_value(text: str) -> str:
    return " ".join(str(text).split()).encode("ascii", "replace").decode()[:500]


class HubView(APIView):
    authentication_classes = [HubTokenAuthentication, SessionAuthentication]
    permission_classes = [permissions.AllowAny, *APIView.permission_classes]
    renderer_classes = [JSONRenderer]
    token_scopes = {"GET": "read", "HEAD": "read"}

    def perform_content_negotiation(self, request: Request, force: bool = False) -> Any:
        return super().perform_content_negotiation(request, force=True)

    def handle_exception(self, exc: Exception) -> Response:
        response = super().handle_exception(exc)
        if isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
            message = INVALID_CREDENTIALS
        else:
            data = response.data if isinstance(response.data, dict) else {}
            message = str(data.get("detail") or getattr(exc, "detail", "") or "Error")
        code = getattr(exc, "hub_code", None)
        if code:
            response["X-Error-Code"] = code
        response["X-Error-Message"] = _header_value(message)
        commit = getattr(exc, "commit", None)
        if commit:
            response["X-Repo-Commit"] = commit
        if isinstance(response.data, dict):
            response.data["error"] = message
        return response


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


class ModelInfoView(HubView):
    """`HfApi.model_info` / `repo_info` (and the first call of `snapshot_download`)."""

    @extend_schema(exclude=True)
    def get(self, request: Request, owner: str, name: str, rev: str = "main") -> Response:
        variant = selectors.hub_repo(request.user, owner, name)
        revision = selectors.hub_revision(request.user, variant, rev)
        shown = variant_as_seen_by(request.user, variant)
        parents = [link.parent for link in shown.parent_links.all() if parent_visible(request.user, link.parent)]
        card = card_metadata(shown, parents=parents)
        files = selectors.served_files(revision)
        tags = list(shown.tags or [])
        if shown.license:
            tags.append(f"license:{shown.license}")
        body = {
            "_id": str(variant.pk),
            "id": variant.full_name,
            "modelId": variant.full_name,
            "author": variant.owner.username,
            "sha": selectors.commit_id(revision.artifacts.all()),
            "revision": revision.number,
            "lastModified": selectors.hub_time(revision.status_changed_at or revision.created_at),
            "createdAt": selectors.hub_time(variant.created_at),
            "private": not variant.is_public,
            "gated": False,
            "disabled": False,
            "downloads": variant.downloads,
            "likes": 0,
            "library_name": (shown.card_data or {}).get("library_name"),
            "pipeline_tag": shown.task or None,
            "tags": tags,
            "cardData": card,
            "siblings": [selectors.sibling(a) for a in files],
            "usedStorage": sum(a.size_bytes for a in files),
        }
        body.update(selectors.weights_info(files))
        return Response(body)


class TreeView(HubView):
    """`HfApi.list_repo_tree` and `list_repo_files` (recursive), as `snapshot_download` lists a commit."""

    @extend_schema(exclude=True)
    def get(self, request: Request, owner: str, name: str, rev: str, path: str = "") -> Response:
        variant = selectors.hub_repo(request.user, owner, name)
        revision = selectors.hub_revision(request.user, variant, rev)
        return Response(selectors.tree(revision, path, recursive=_truthy(request.query_params.get("recursive"))))


class ResolveView(HubView):
    """`hf_hub_download`: HEAD for the metadata (commit, ETag = sha256, size), then GET, with Range to resume."""

    @extend_schema(exclude=True)
    def get(self, request: Request, owner: str, name: str, rev: str, path: str) -> HttpResponseBase:
        variant = selectors.hub_repo(request.user, owner, name)
        revision = selectors.hub_revision(request.user, variant, rev)
        artifact = selectors.entry(revision, path)
        headers = {
            "X-Repo-Commit": selectors.commit_id(revision.artifacts.all()),
            "X-Linked-Etag": f'"{artifact.sha256}"',
            "X-Linked-Size": str(artifact.size_bytes),
        }
        return artifact_response(request, artifact, headers=headers, on_download=lambda: download_recorded(variant.pk))
