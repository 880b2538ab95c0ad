"""WebSocket routes of every app, mounted together (like config/urls.py for HTTP)."""

websocket_urlpatterns: list = []
