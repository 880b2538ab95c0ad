from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from accounts.models import Membership

ACTIVE_ORG_SESSION_KEY = "active_organization_id"


class ActiveOrganizationMiddleware:
    """Sets `request.organization` and `request.membership` from the session's active org.

    Falls back to the user's first membership; both are None for anonymous users or users
    with no organization.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request.organization = None  # type: ignore[attr-defined]
        request.membership = None  # type: ignore[attr-defined]
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            memberships = Membership.objects.filter(user=user).select_related("organization")
            wanted = request.session.get(ACTIVE_ORG_SESSION_KEY)
            membership = None
            if wanted is not None:
                membership = memberships.filter(organization_id=wanted).first()
            if membership is None:
                membership = memberships.order_by("created_at", "pk").first()
            if membership is not None:
                request.membership = membership  # type: ignore[attr-defined]
                request.organization = membership.organization  # type: ignore[attr-defined]
        return self.get_response(request)
