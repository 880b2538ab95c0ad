"""WebSocket routes of every app, mounted together (like config/urls.py for HTTP)."""

from finetune.routing import websocket_urlpatterns as finetune_routes

websocket_urlpatterns = [*finetune_routes]
