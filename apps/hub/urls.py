"""Hub-compatible routes: included from the project's URLconf before the web pages (the resolve path is at the
root, like the Hub's)."""

from django.urls import path

from .views import ModelInfoView, ResolveView, TreeView

M = "api/models/<str:owner>/<str:name>"

urlpatterns = [
    path(M, ModelInfoView.as_view(), name="hub-model-info"),
    path(f"{M}/revision/<path:rev>", ModelInfoView.as_view(), name="hub-model-info-revision"),
    path(f"{M}/tree/<str:rev>", TreeView.as_view(), name="hub-tree"),
    path(f"{M}/tree/<str:rev>/<path:path>", TreeView.as_view(), name="hub-tree-path"),
    path("<str:owner>/<str:name>/resolve/<str:rev>/<path:path>", ResolveView.as_view(), name="hub-resolve"),
]
