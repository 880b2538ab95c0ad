from django.urls import path

from store import tuned_views, views

app_name = "store"

urlpatterns = [
    path("", views.home, name="home"),
    path("models/<slug:slug>/", views.model_detail, name="model_detail"),
    path("tuned/<str:short_id>/", tuned_views.tuned_detail, name="tuned_detail"),
    path("tuned/<str:short_id>/download/", tuned_views.tuned_download, name="tuned_download"),
    path("tuned/<str:short_id>/merge/", tuned_views.tuned_merge, name="tuned_merge"),
    path("tuned/<str:short_id>/merged/download/", tuned_views.tuned_merged_download, name="tuned_merged_download"),
    path("tuned/<str:short_id>/publish/", tuned_views.tuned_publish, name="tuned_publish"),
    path("tuned/<str:short_id>/delete/", tuned_views.tuned_delete, name="tuned_delete"),
]
