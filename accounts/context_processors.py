from django.http import HttpRequest

from accounts.models import Membership


def organizations(request: HttpRequest) -> dict:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {
        "active_organization": getattr(request, "organization", None),
        "active_membership": getattr(request, "membership", None),
        "my_memberships": Membership.objects.filter(user=user).select_related("organization"),
    }
