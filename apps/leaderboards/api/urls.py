from django.urls import path
from rest_framework.routers import SimpleRouter

from .views import BenchmarkLeaderboardView, SuiteLeaderboardView, SuiteViewSet

router = SimpleRouter()
router.register("suites", SuiteViewSet, basename="suite")

urlpatterns = [
    path("leaderboards/suites/<slug:suite_slug>/", SuiteLeaderboardView.as_view(), name="leaderboard-suite"),
    path("leaderboards/<slug:benchmark_slug>/", BenchmarkLeaderboardView.as_view(), name="leaderboard-benchmark"),
    *router.urls,
]
