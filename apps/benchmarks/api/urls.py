from django.urls import path
from rest_framework.routers import SimpleRouter

from .views import BenchmarkViewSet, BlocklistViewSet, JobViewSet

router = SimpleRouter()
router.register("benchmarks", BenchmarkViewSet, basename="benchmark")
router.register("jobs", JobViewSet, basename="job")
router.register("blocklist", BlocklistViewSet, basename="blocklist")
urlpatterns = [
    # A file name, as the SPEC spells it: no trailing slash.
    path("jobs/<int:pk>/bundle.json", JobViewSet.as_view({"get": "bundle"}), name="job-bundle"),
    *router.urls,
]
