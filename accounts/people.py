"""Organizations and memberships: the actions pages, the admin and commands all call."""

from __future__ import annotations

import logging

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from accounts.models import Invitation, Membership, Organization, Role

logger = logging.getLogger(__name__)


def create_user(email: str, password: str, name: str = ""):
    """Users sign in with their email; it doubles as the username."""
    User = get_user_model()
    email = User.objects.normalize_email(email).lower()
    if User.objects.filter(username=email).exists():
        raise ValidationError({"email": "An account with this email already exists."})
    first, _, last = name.strip().partition(" ")
    return User.objects.create_user(username=email, email=email, password=password, first_name=first, last_name=last)


@transaction.atomic
def create_organization(name: str, admin_user) -> Organization:
    organization = Organization.objects.create(name=name.strip(), slug=Organization.unique_slug(name))
    Membership.objects.create(user=admin_user, organization=organization, role=Role.ADMIN)
    return organization


def invitation_url(invitation: Invitation, site_url: str) -> str:
    return site_url.rstrip("/") + reverse("accounts:accept_invitation", args=[invitation.token])


def invite(organization: Organization, email: str, role: str, invited_by, site_url: str) -> Invitation:
    """Create an invitation. No mail server is assumed, so the link is logged and shown to the inviter."""
    email = email.strip().lower()
    if Membership.objects.filter(organization=organization, user__username=email).exists():
        raise ValidationError({"email": f"{email} is already a member of {organization}."})
    if role not in Role.values:
        raise ValidationError({"role": f"Unknown role {role!r}."})
    invitation = Invitation.objects.create(organization=organization, email=email, role=role, invited_by=invited_by)
    logger.warning("Invitation for %s to join %s as %s: %s", email, organization, role,
                   invitation_url(invitation, site_url))
    return invitation


@transaction.atomic
def accept_invitation(invitation: Invitation, user) -> Membership:
    invitation = Invitation.objects.select_for_update().get(pk=invitation.pk)
    if not invitation.is_usable:
        raise ValidationError("This invitation has expired or was already used.")
    membership, created = Membership.objects.get_or_create(
        user=user, organization=invitation.organization, defaults={"role": invitation.role}
    )
    invitation.accepted_at = timezone.now()
    invitation.accepted_by = user
    invitation.save(update_fields=["accepted_at", "accepted_by"])
    return membership


def _other_admins(membership: Membership) -> bool:
    return (
        Membership.objects.filter(organization=membership.organization, role=Role.ADMIN)
        .exclude(pk=membership.pk)
        .exists()
    )


@transaction.atomic
def change_role(membership: Membership, role: str) -> Membership:
    if role not in Role.values:
        raise ValidationError(f"Unknown role {role!r}.")
    if membership.role == Role.ADMIN and role != Role.ADMIN and not _other_admins(membership):
        raise ValidationError("An organization needs at least one admin: promote someone else first.")
    membership.role = role
    membership.save(update_fields=["role"])
    return membership


@transaction.atomic
def remove_member(membership: Membership) -> None:
    if membership.role == Role.ADMIN and not _other_admins(membership):
        raise ValidationError("You cannot remove the last admin of an organization.")
    membership.delete()
