from django.urls import path

from knowledge import answer_views, views

app_name = "knowledge"

urlpatterns = [
    path("knowledge/", views.index, name="index"),
    path("knowledge/<slug:slug>/", views.detail, name="detail"),
    path("knowledge/<slug:slug>/live/", views.sources_partial, name="sources_partial"),
    path("knowledge/<slug:slug>/upload/", views.upload, name="upload"),
    path("knowledge/<slug:slug>/paste/", views.paste, name="paste"),
    path("knowledge/<slug:slug>/ask/", answer_views.ask, name="ask"),
    path("knowledge/<slug:slug>/check/", answer_views.check_questions, name="check_questions"),
    path("knowledge/<slug:slug>/embedding-model/", views.switch_model, name="switch_model"),
    path("knowledge/<slug:slug>/delete/", views.delete, name="delete"),
    path("knowledge/<slug:slug>/sources/<int:source_id>/", views.source_detail, name="source_detail"),
    path("knowledge/<slug:slug>/sources/<int:source_id>/upload/", views.source_upload, name="source_upload"),
    path("knowledge/<slug:slug>/sources/<int:source_id>/delete/", views.source_delete, name="source_delete"),
    path("knowledge/<slug:slug>/sources/<int:source_id>/versions/<int:number>/retry/", views.version_retry,
         name="version_retry"),
    path("deployments/<slug:slug>/knowledge/", answer_views.deployment_knowledge, name="deployment_knowledge"),
    path("deployments/<slug:slug>/playground/chat", answer_views.playground_chat, name="playground_chat"),
]
