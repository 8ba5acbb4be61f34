from django.urls import path

from . import views

R = "variants/<str:owner>/<str:name>/revisions/<int:number>/"

urlpatterns = [
    path(R + "reviews/", views.RevisionReviewsView.as_view(), name="revision-reviews"),
    path(R + "gate/", views.RevisionGateView.as_view(), name="revision-gate"),
    path(R + "publish/", views.RevisionPublishView.as_view(), name="revision-publish"),
    path(R + "unpublish/", views.RevisionUnpublishView.as_view(), name="revision-unpublish"),
    path(R + "reject/", views.RevisionRejectView.as_view(), name="revision-reject"),
    path(R + "assign/", views.RevisionAssignView.as_view(), name="revision-assign"),
    path(R + "unassign/", views.RevisionUnassignView.as_view(), name="revision-unassign"),
    path("reviews/queue/", views.ReviewQueueView.as_view(), name="review-queue"),
    path("variants/<str:owner>/<str:name>/comments/", views.VariantCommentsView.as_view(), name="variant-comments"),
    path("comments/<int:pk>/", views.CommentDetailView.as_view(), name="comment-detail"),
    path("comments/<int:pk>/hide/", views.CommentHideView.as_view(), name="comment-hide"),
    path("comments/<int:pk>/unhide/", views.CommentUnhideView.as_view(), name="comment-unhide"),
    path("variants/<str:owner>/<str:name>/flags/", views.VariantFlagsView.as_view(), name="variant-flags"),
    path("flags/", views.FlagListView.as_view(), name="flag-list"),
    path("flags/<int:pk>/", views.FlagDetailView.as_view(), name="flag-detail"),
    path("flags/<int:pk>/resolve/", views.FlagResolveView.as_view(), name="flag-resolve"),
    path("flags/<int:pk>/respond/", views.FlagRespondView.as_view(), name="flag-respond"),
]
