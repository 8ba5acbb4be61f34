"""The /api/v1/ URL tree: each app contributes its own api/urls.py."""

from django.urls import include, path

urlpatterns = [
    path("", include("apps.accounts.api.urls")),
    # The audit trail (/audit/) is read by maintainers: its API is one of their tools; the trail is apps.audit.
    path("", include("apps.moderation.api.urls")),
    path("", include("apps.orgs.api.urls")),
    path("", include("apps.registry.api.urls")),
    path("", include("apps.transfers.api.urls")),
    path("", include("apps.benchmarks.api.urls")),
    path("", include("apps.checklists.api.urls")),
    path("", include("apps.leaderboards.api.urls")),
    path("", include("apps.reviews.api.urls")),
    path("", include("apps.notifications.api.urls")),
]
