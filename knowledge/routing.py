from channels.auth import AuthMiddlewareStack
from django.urls import path

from knowledge import consumers

websocket_urlpatterns = [
    path("ws/knowledge/<int:knowledge_base_id>/", AuthMiddlewareStack(consumers.KnowledgeUpdatesConsumer.as_asgi())),
]
