from django.urls import path

from finetune import consumers

websocket_urlpatterns = [
    path("ws/finetune/jobs/", consumers.OrganizationJobsConsumer.as_asgi()),
    path("ws/finetune/jobs/<str:public_id>/", consumers.JobUpdatesConsumer.as_asgi()),
    path("ws/finetune/datasets/<str:public_id>/", consumers.DatasetUpdatesConsumer.as_asgi()),
]
