from rest_framework.routers import SimpleRouter

from .views import BenchmarkViewSet, JobViewSet

router = SimpleRouter()
router.register("benchmarks", BenchmarkViewSet, basename="benchmark")
router.register("jobs", JobViewSet, basename="job")
urlpatterns = router.urls
