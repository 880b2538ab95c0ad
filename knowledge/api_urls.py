from django.urls import path

from knowledge import api

urlpatterns = [
    path("chat/completions", api.chat_completions, name="chat_completions"),
]
