from django.db import connection
from django.http import HttpRequest, HttpResponsePermanentRedirect, JsonResponse
from django.templatetags.static import static
from django.views.decorators.cache import never_cache

from core.embedded_redis import ping


@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness for the launcher and load balancers: the database and Redis answer."""
    from django.conf import settings

    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    redis_ok = ping(settings.REDIS_URL)
    return JsonResponse({"status": "ok" if redis_ok else "degraded", "database": True, "redis": redis_ok},
                        status=200 if redis_ok else 503)


def favicon(request: HttpRequest) -> HttpResponsePermanentRedirect:
    """Browsers ask /favicon.ico of pages that name no icon (the admin, error pages): the site's icon."""
    return HttpResponsePermanentRedirect(static("core/favicon.svg"))
