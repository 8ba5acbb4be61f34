from django.urls import path

from .ownership import VariantCollaboratorsView, VariantCollaboratorView, VariantTransferView
from .views import (
    ArtifactCreateView,
    RevisionSubmitView,
    RevisionViewSet,
    RevisionWithdrawView,
    VariantCardView,
    VariantImportCardView,
    VariantLineageView,
    VariantViewSet,
)

V = "variants/<str:owner>/<str:name>"
R = f"{V}/revisions/<int:number>"

urlpatterns = [
    path("variants/", VariantViewSet.as_view({"get": "list", "post": "create"}), name="variant-list"),
    path("variants/import-card/", VariantImportCardView.as_view(), name="variant-import-card"),
    path(
        f"{V}/",
        VariantViewSet.as_view({"get": "retrieve", "patch": "partial_update", "delete": "destroy"}),
        name="variant-detail",
    ),
    path(f"{V}/transfer/", VariantTransferView.as_view(), name="variant-transfer"),
    path(f"{V}/collaborators/", VariantCollaboratorsView.as_view(), name="variant-collaborators"),
    path(f"{V}/collaborators/<str:username>/", VariantCollaboratorView.as_view(), name="variant-collaborator"),
    path(f"{V}/lineage/", VariantLineageView.as_view(), name="variant-lineage"),
    path(f"{V}/card.md", VariantCardView.as_view(), name="variant-card"),
    path(f"{V}/revisions/", RevisionViewSet.as_view({"get": "list", "post": "create"}), name="revision-list"),
    path(f"{R}/", RevisionViewSet.as_view({"get": "retrieve"}), name="revision-detail"),
    path(f"{R}/artifacts/", ArtifactCreateView.as_view(), name="revision-artifacts"),
    path(f"{R}/submit/", RevisionSubmitView.as_view(), name="revision-submit"),
    path(f"{R}/withdraw/", RevisionWithdrawView.as_view(), name="revision-withdraw"),
]
