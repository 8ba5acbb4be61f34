from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from apps.core import problems
from apps.core import views as core_views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("api/v1/", include("modelcommons.api")),
    # The Hugging Face Hub-compatible read API (/api/models/… and /{owner}/{name}/resolve/…).
    path("", include("apps.hub.urls")),
    path("healthz", core_views.healthz, name="healthz"),
    path("readyz", core_views.readyz, name="readyz"),
    path("", include("apps.web.urls")),
    # Last: anything unknown under /api/ (paths, ids the converters refuse) is a problem+json 404, DEBUG or not.
    re_path(r"^api/", problems.api_not_found),
]

handler400 = "apps.core.problems.handler400"
handler403 = "apps.core.problems.handler403"
handler404 = "apps.core.problems.handler404"
handler500 = "apps.core.problems.handler500"
