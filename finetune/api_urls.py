from django.urls import path

from finetune import api

urlpatterns = [
    path("files", api.files, name="files"),
    path("files/<str:file_id>", api.file_detail, name="file"),
    path("files/<str:file_id>/content", api.file_content, name="file_content"),
    path("fine_tuning/jobs", api.fine_tuning_jobs, name="fine_tuning_jobs"),
    path("fine_tuning/jobs/<str:job_id>", api.fine_tuning_job, name="fine_tuning_job"),
    path("fine_tuning/jobs/<str:job_id>/cancel", api.cancel_fine_tuning_job, name="cancel_fine_tuning_job"),
    path("fine_tuning/jobs/<str:job_id>/events", api.fine_tuning_job_events, name="fine_tuning_job_events"),
    path("fine_tuning/jobs/<str:job_id>/checkpoints", api.fine_tuning_job_checkpoints,
         name="fine_tuning_job_checkpoints"),
]
