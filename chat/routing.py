from django.urls import path

from chat import consumers

websocket_urlpatterns = [
    path("ws/chat/widget/", consumers.WidgetConsumer.as_asgi()),
    path("ws/chat/console/", consumers.ConsoleConsumer.as_asgi()),
    path("ws/chat/console/<int:conversation_id>/", consumers.ConsoleConsumer.as_asgi()),
]
