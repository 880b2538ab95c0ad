from django.contrib import admin
from django.urls import include, path, re_path

from core.views import favicon, healthz
from finetune.api_urls import urlpatterns as finetune_api
from knowledge.api_urls import urlpatterns as knowledge_api
from store.api.urls import urlpatterns as store_api
from store.api.views import not_found as api_not_found

# The OpenAI-compatible API: each app owns its endpoints; they are mounted together under /v1.
v1 = [*store_api, *knowledge_api, *finetune_api, re_path(r"^.*$", api_not_found)]

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("favicon.ico", favicon, name="favicon"),
    path("v1/", include((v1, "v1"))),
    path("admin/", admin.site.urls),
    path("accounts/", include("accounts.urls")),
    path("finetune/", include("finetune.urls")),
    path("market/", include("market.urls")),
    path("upstreams/", include("upstreams.urls")),
    path("", include("knowledge.urls")),
    path("", include("chat.urls")),
    path("", include("store.urls")),
]
# MEDIA_ROOT (uploaded datasets) is never served, not even with DEBUG on: files leave the server only
# through views that check the organization (e.g. finetune:dataset_download).
