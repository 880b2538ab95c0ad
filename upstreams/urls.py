from django.urls import path

from upstreams import views

app_name = "upstreams"

urlpatterns = [
    path("", views.upstream_list, name="list"),
    path("<int:upstream_id>/key/", views.replace_key, name="replace_key"),
    path("<int:upstream_id>/delete/", views.delete, name="delete"),
]
