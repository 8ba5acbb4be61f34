"""The checklist badge: a small flat SVG (shields.io layout) with the level reached and its percentage."""

from __future__ import annotations

from dataclasses import dataclass
from xml.sax.saxutils import escape

from apps.core.conditional import etag_for

from .choices import IN_PROGRESS, LEVEL_ORDER

COLOURS = {IN_PROGRESS: "#fe7d37", "passing": "#4c1", "silver": "#9f9f9f", "gold": "#dfb317", "none": "#9f9f9f"}
LABEL = "checklist"


@dataclass(frozen=True)
class Badge:
    svg: bytes
    etag: str
    message: str


def badge_message(level: str, progress: dict[str, int]) -> str:
    """`in progress 62%` before passing; then the level and how far the next one is (`passing · silver 40%`)."""
    if level == IN_PROGRESS:
        return f"in progress {progress.get('passing', 0)}%"
    following = LEVEL_ORDER[LEVEL_ORDER.index(level) + 1 :] if level in LEVEL_ORDER else ()
    if following and progress.get(following[0], 0) > 0:
        return f"{level} · {following[0]} {progress.get(following[0], 0)}%"
    return level


def _text_width(text: str) -> int:
    # Verdana 11px averages about 6.5 px per character; narrow glyphs pull that down, wide ones up.
    narrow, wide = set("iljtfI.,:;·| 1"), set("mwMW%@")
    return int(sum(4 if c in narrow else 9 if c in wide else 7 for c in text)) + 10


def render_badge(*, level: str, progress: dict[str, int], title: str) -> Badge:
    message = badge_message(level, progress)
    colour = COLOURS.get(level, COLOURS["none"])
    return _render(LABEL, message, colour, title)


def render_placeholder(message: str, title: str) -> Badge:
    return _render(LABEL, message, COLOURS["none"], title)


def _render(label: str, message: str, colour: str, title: str) -> Badge:
    lw, mw = _text_width(label), _text_width(message)
    width = lw + mw
    label_x, message_x = lw * 5, (lw + mw / 2) * 10
    svg = (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="20" role="img" '
        f'aria-label="{escape(label)}: {escape(message)}">'
        f"<title>{escape(title)}</title>"
        '<linearGradient id="s" x2="0" y2="100%"><stop offset="0" stop-color="#bbb" stop-opacity=".1"/>'
        '<stop offset="1" stop-opacity=".1"/></linearGradient>'
        f'<clipPath id="r"><rect width="{width}" height="20" rx="3" fill="#fff"/></clipPath>'
        f'<g clip-path="url(#r)"><rect width="{lw}" height="20" fill="#555"/>'
        f'<rect x="{lw}" width="{mw}" height="20" fill="{colour}"/>'
        f'<rect width="{width}" height="20" fill="url(#s)"/></g>'
        '<g fill="#fff" text-anchor="middle" font-family="Verdana,Geneva,DejaVu Sans,sans-serif" '
        'text-rendering="geometricPrecision" font-size="110">'
        f'<text x="{label_x:.0f}" y="140" transform="scale(.1)" fill="#fff">{escape(label)}</text>'
        f'<text x="{message_x:.0f}" y="140" transform="scale(.1)" fill="#fff">{escape(message)}</text>'
        "</g></svg>"
    ).encode()
    return Badge(svg=svg, etag=etag_for(svg), message=message)
