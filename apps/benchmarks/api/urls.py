from rest_framework.routers import SimpleRouter

from .views import BenchmarkViewSet, BlocklistViewSet, JobViewSet

router = SimpleRouter()
router.register("benchmarks", BenchmarkViewSet, basename="benchmark")
router.register("jobs", JobViewSet, basename="job")
router.register("blocklist", BlocklistViewSet, basename="blocklist")
urlpatterns = router.urls
