from django.urls import path

from .views import (
    ChecklistItemView,
    ChecklistView,
    ComponentDetailView,
    ComponentsView,
    RevisionBadgeView,
    TemplateViewSet,
    VariantBadgeView,
)

V = "variants/<str:owner>/<str:name>"
R = f"{V}/revisions/<int:number>"
T = "checklist-templates/<slug:slug>"

urlpatterns = [
    path(f"{R}/checklist/", ChecklistView.as_view(), name="checklist-detail"),
    path(f"{R}/checklist/badge.svg", RevisionBadgeView.as_view(), name="checklist-badge"),
    path(f"{R}/checklist/<str:item_key>/", ChecklistItemView.as_view(), name="checklist-item"),
    path(f"{R}/components/", ComponentsView.as_view(), name="revision-components"),
    path(f"{R}/components/<str:component>/", ComponentDetailView.as_view(), name="revision-component"),
    path(f"{V}/badge.svg", VariantBadgeView.as_view(), name="variant-checklist-badge"),
    path(
        "checklist-templates/",
        TemplateViewSet.as_view({"get": "list", "post": "create"}),
        name="checklist-template-list",
    ),
    path(
        f"{T}/",
        TemplateViewSet.as_view({"get": "retrieve", "patch": "partial_update"}),
        name="checklist-template-detail",
    ),
    path(
        f"{T}/versions/<int:version>/", TemplateViewSet.as_view({"get": "version"}), name="checklist-template-version"
    ),
]
