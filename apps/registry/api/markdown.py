"""text/markdown in and out: model cards travel as README.md files."""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import BaseParser
from rest_framework.renderers import BaseRenderer

from apps.core.parsers import read_capped


class MarkdownParser(BaseParser):
    """The request body is the README itself; `request.data` becomes a str."""

    media_type = "text/markdown"

    # DRF hands any parser's result on as request.data; the stubs' BaseParser says a mapping, this one's is the text.
    def parse(  # type: ignore[override]
        self,
        stream: Any,
        media_type: str | None = None,
        parser_context: Any = None,
    ) -> str:
        limit = settings.MC_CARD_MAX_CHARS * 4  # utf-8 is at most 4 bytes a character
        raw = read_capped(stream, limit, parser_context, "model card")
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ParseError(f"The card is not valid UTF-8: {exc}")


class MarkdownRenderer(BaseRenderer):
    media_type = "text/markdown"
    format = "md"
    charset = "utf-8"

    def render(self, data: Any, accepted_media_type: str | None = None, renderer_context: Any = None) -> bytes:
        if isinstance(data, str):
            return data.encode("utf-8")
        # Error bodies (problem+json) still go out as JSON.
        return json.dumps(data, ensure_ascii=False).encode("utf-8")
