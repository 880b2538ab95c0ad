"""WebSocket routes of every app, mounted together (like config/urls.py for HTTP)."""

from chat.routing import websocket_urlpatterns as chat_routes
from finetune.routing import websocket_urlpatterns as finetune_routes
from knowledge.routing import websocket_urlpatterns as knowledge_routes

websocket_urlpatterns = [*finetune_routes, *knowledge_routes, *chat_routes]
