from channels.auth import AuthMiddlewareStack
from django.urls import path

from finetune import consumers

websocket_urlpatterns = [
    path("ws/finetune/jobs/", AuthMiddlewareStack(consumers.OrganizationJobsConsumer.as_asgi())),
    path("ws/finetune/jobs/<str:public_id>/", AuthMiddlewareStack(consumers.JobUpdatesConsumer.as_asgi())),
    path("ws/finetune/datasets/<str:public_id>/", AuthMiddlewareStack(consumers.DatasetUpdatesConsumer.as_asgi())),
]
