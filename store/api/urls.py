from django.urls import path

from store.api import docs, views

urlpatterns = [
    path("models", views.list_models, name="models"),
    path("models/<str:model_id>", views.retrieve_model, name="model"),
    path("embeddings", views.embeddings, name="embeddings"),
    path("sentiment", views.sentiment, name="sentiment"),
    path("openapi.json", docs.openapi_json, name="openapi"),
    path("docs", docs.api_docs, name="docs"),
]
