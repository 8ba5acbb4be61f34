from django.urls import path, re_path

from .views import (
    RevisionFileDownloadView,
    RevisionFilesView,
    UploadCompleteView,
    UploadCreateView,
    UploadDetailView,
    WorkerBlobView,
)

R = "variants/<str:owner>/<str:name>/revisions/<int:number>"

urlpatterns = [
    path(f"{R}/files/", RevisionFilesView.as_view(), name="revision-files"),
    path(f"{R}/files/<path:path>", RevisionFileDownloadView.as_view(), name="revision-file"),
    path("uploads/", UploadCreateView.as_view(), name="upload-list"),
    path("uploads/<uuid:upload_id>/", UploadDetailView.as_view(), name="upload-detail"),
    re_path(r"^internal/blobs/(?P<sha256>[0-9a-f]{64})/$", WorkerBlobView.as_view(), name="worker-blob"),
    path("uploads/<uuid:upload_id>/complete/", UploadCompleteView.as_view(), name="upload-complete"),
]
