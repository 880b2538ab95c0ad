"""WebSocket routes of every app, mounted together (like config/urls.py for HTTP)."""

from chat.routing import websocket_urlpatterns as chat_routes
from finetune.routing import websocket_urlpatterns as finetune_routes

websocket_urlpatterns = [*finetune_routes, *chat_routes]
