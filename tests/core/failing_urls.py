"""A URLconf with one view that fails, for the 500 page's test."""

from django.urls import path


def fail(request):
    raise RuntimeError("boom")


urlpatterns = [path("fail/", fail)]
