from django.urls import path

from finetune import views

app_name = "finetune"

urlpatterns = [
    path("", views.index, name="index"),
    path("jobs/live/", views.job_list_partial, name="job_list_partial"),
    path("jobs/new/", views.job_new, name="job_new"),
    path("jobs/new/defaults/", views.job_defaults_partial, name="job_defaults"),
    path("jobs/<str:public_id>/", views.job_detail, name="job_detail"),
    path("jobs/<str:public_id>/live/", views.job_live_partial, name="job_live"),
    path("jobs/<str:public_id>/cancel/", views.job_cancel, name="job_cancel"),
    path("jobs/<str:public_id>/delete/", views.job_delete, name="job_delete"),
    path("datasets/upload/", views.dataset_upload, name="dataset_upload"),
    path("datasets/from-knowledge/<int:kb_id>/", views.dataset_from_knowledge, name="dataset_from_knowledge"),
    path("datasets/example/<slug:key>/", views.dataset_from_example, name="dataset_from_example"),
    path("datasets/answer-recipe/<int:kb_id>/", views.answer_recipe_from_knowledge,
         name="answer_recipe_from_knowledge"),
    path("datasets/<str:public_id>/", views.dataset_detail, name="dataset_detail"),
    path("datasets/<str:public_id>/live/", views.dataset_stats_partial, name="dataset_stats"),
    path("datasets/<str:public_id>/tokens/", views.dataset_token_stats, name="dataset_token_stats"),
    path("datasets/<str:public_id>/split/", views.dataset_resplit, name="dataset_resplit"),
    path("datasets/<str:public_id>/delete/", views.dataset_delete, name="dataset_delete"),
    path("datasets/<str:public_id>/download/", views.dataset_download, name="dataset_download"),
]
