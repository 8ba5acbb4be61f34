from django.urls import path
from rest_framework.routers import SimpleRouter

from .views import RevisionViewSet, VariantViewSet

router = SimpleRouter()
router.register("variants", VariantViewSet, basename="variant")

V = r"(?P<owner>[A-Za-z0-9][A-Za-z0-9._@+-]*)/(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)"
revision_list = RevisionViewSet.as_view({"get": "list"})
revision_detail = RevisionViewSet.as_view({"get": "retrieve"})

urlpatterns = [
    path("variants/<str:owner>/<str:name>/revisions/", revision_list, name="revision-list"),
    path("variants/<str:owner>/<str:name>/revisions/<int:number>/", revision_detail, name="revision-detail"),
    *router.urls,
]
