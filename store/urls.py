from django.urls import path

from store import deployment_views as dv
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
    path("deployments/", dv.deployment_list, name="deployment_list"),
    path("deployments/new/", dv.deployment_edit, name="deployment_new"),
    path("deployments/<slug:slug>/", dv.deployment_detail, name="deployment_detail"),
    path("deployments/<slug:slug>/edit/", dv.deployment_edit, name="deployment_edit"),
    path("deployments/<slug:slug>/rollback/", dv.deployment_rollback, name="deployment_rollback"),
    path("deployments/<slug:slug>/status/", dv.deployment_status, name="deployment_status"),
    path("deployments/<slug:slug>/delete/", dv.deployment_delete, name="deployment_delete"),
    path("deployments/<slug:slug>/playground/sentiment", dv.playground_sentiment, name="playground_sentiment"),
    path("api-keys/", dv.api_keys, name="api_keys"),
    path("api-keys/<int:key_id>/revoke/", dv.api_key_revoke, name="api_key_revoke"),
    path("usage/", dv.usage, name="usage"),
]
