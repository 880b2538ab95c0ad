from channels.auth import AuthMiddlewareStack
from django.urls import path

from chat import consumers

# The widget's socket authenticates with its own signed token (chat/identity.py): it does without the session
# and user lookup of the signed-in pages' sockets, a database read on Channels' shared thread that a
# customer's socket must never wait for (chat/consumers.py, WIDGET_DB).
websocket_urlpatterns = [
    path("ws/chat/widget/", consumers.WidgetConsumer.as_asgi()),
    path("ws/chat/console/", AuthMiddlewareStack(consumers.ConsoleConsumer.as_asgi())),
    path("ws/chat/console/<int:conversation_id>/", AuthMiddlewareStack(consumers.ConsoleConsumer.as_asgi())),
]
