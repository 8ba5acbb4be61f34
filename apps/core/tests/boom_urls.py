"""The project's URLs plus views that fail on purpose under /api/ (test_problems)."""

from django.core.exceptions import RequestDataTooBig
from django.http import Http404, HttpRequest, HttpResponse
from django.urls import path
from django.views.decorators.http import require_GET
from modelcommons import urls as project_urls
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

SECRET = "boom-secret-internals"


def django_boom(request: HttpRequest) -> HttpResponse:
    raise RuntimeError(SECRET)


def django_too_big(request: HttpRequest) -> HttpResponse:
    raise RequestDataTooBig(SECRET)


def django_missing(request: HttpRequest) -> HttpResponse:
    raise Http404(SECRET)


@require_GET
def django_get_only(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok")


class DrfBoom(APIView):
    permission_classes = [AllowAny]
    token_scopes = {"GET": "read"}

    def get(self, request: Request) -> Response:
        raise RuntimeError(SECRET)


urlpatterns = [
    path("api/v1/__boom__/django/", django_boom),
    path("api/v1/__boom__/too-big/", django_too_big),
    path("api/v1/__boom__/missing/", django_missing),
    path("api/v1/__boom__/get-only/", django_get_only),
    path("api/v1/__boom__/drf/", DrfBoom.as_view()),
    *project_urls.urlpatterns,
]
handler400 = project_urls.handler400
handler403 = project_urls.handler403
handler404 = project_urls.handler404
handler500 = project_urls.handler500
