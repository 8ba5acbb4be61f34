"""Server-rendered pages for contributors. Views stay thin: read through selectors/querysets that already
filter by visibility (so a hidden object is a 404), write through one service call, render a template."""

from __future__ import annotations

from django.http import HttpRequest
from django_htmx.middleware import HtmxDetails

from apps.accounts.models import User


class WebRequest(HttpRequest):
    """What HtmxMiddleware adds to every request (django-htmx's documented typing pattern)."""

    htmx: HtmxDetails


class AuthedRequest(WebRequest):
    """A request behind @login_required."""

    user: User
