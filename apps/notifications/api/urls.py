from django.urls import path
from rest_framework.routers import SimpleRouter

from .views import NotificationPreferencesView, NotificationViewSet, WebhookDeliveryViewSet, WebhookViewSet

router = SimpleRouter()
router.register("notifications", NotificationViewSet, basename="notification")
router.register("webhooks", WebhookViewSet, basename="webhook")

deliveries = WebhookDeliveryViewSet.as_view({"get": "list"})
delivery = WebhookDeliveryViewSet.as_view({"get": "retrieve"})
redeliver = WebhookDeliveryViewSet.as_view({"post": "redeliver"})

urlpatterns = [
    path("notifications/preferences/", NotificationPreferencesView.as_view(), name="notification-preferences"),
    path("webhooks/<int:webhook_pk>/deliveries/", deliveries, name="webhook-deliveries"),
    path("webhooks/<int:webhook_pk>/deliveries/<int:pk>/", delivery, name="webhook-delivery"),
    path("webhooks/<int:webhook_pk>/deliveries/<int:pk>/redeliver/", redeliver, name="webhook-redeliver"),
    *router.urls,
]
