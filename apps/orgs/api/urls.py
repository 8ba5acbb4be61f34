from django.urls import path
from rest_framework.routers import SimpleRouter

from .views import InvitationViewSet, OrgInvitationViewSet, OrgMemberViewSet, OrgViewSet

router = SimpleRouter()
router.register("orgs", OrgViewSet, basename="org")
router.register("invitations", InvitationViewSet, basename="invitation")

member = OrgMemberViewSet.as_view({"patch": "partial_update", "delete": "destroy"})
invitation = OrgInvitationViewSet.as_view({"delete": "destroy"})

urlpatterns = [
    *router.urls,
    path("orgs/<str:org>/members/<str:username>/", member, name="org-member-detail"),
    path("orgs/<str:org>/invitations/<int:pk>/", invitation, name="org-invitation-detail"),
]
