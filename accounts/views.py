from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from accounts import people
from accounts.access import organization_admin_required, organization_required
from accounts.forms import EmailAuthenticationForm, InvitationForm, OrganizationForm, RoleForm, SignupForm
from accounts.middleware import ACTIVE_ORG_SESSION_KEY
from accounts.models import Invitation, Membership
from accounts.scoping import get_for_organization


class LoginView(auth_views.LoginView):
    template_name = "accounts/login.html"
    authentication_form = EmailAuthenticationForm
    redirect_authenticated_user = True


class LogoutView(auth_views.LogoutView):
    pass


def _add_errors(form, error: ValidationError) -> None:
    if hasattr(error, "error_dict"):
        for field, errors in error.error_dict.items():
            form.add_error(field if field in form.fields else None, errors)
    else:
        form.add_error(None, error)


def signup(request: HttpRequest, token: str | None = None) -> HttpResponse:
    invitation = get_object_or_404(Invitation, token=token) if token else None
    form = SignupForm(request.POST or None, invitation=invitation)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            with transaction.atomic():
                user = people.create_user(data["email"], data["password"], data.get("name", ""))
                if invitation is not None:
                    organization = people.accept_invitation(invitation, user).organization
                else:
                    organization = people.create_organization(data["organization"], user)
        except ValidationError as error:
            _add_errors(form, error)
        else:
            login(request, user, backend="django.contrib.auth.backends.ModelBackend")
            request.session[ACTIVE_ORG_SESSION_KEY] = organization.pk
            messages.success(request, f"Welcome to GPT Store, {organization.name}!")
            return redirect("store:home")
    return render(request, "accounts/signup.html", {"form": form, "invitation": invitation})


@login_required
def new_organization(request: HttpRequest) -> HttpResponse:
    form = OrganizationForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        organization = people.create_organization(form.cleaned_data["name"], request.user)
        request.session[ACTIVE_ORG_SESSION_KEY] = organization.pk
        messages.success(request, f"Created {organization.name}. You are its admin.")
        return redirect("store:home")
    return render(request, "accounts/new_organization.html", {"form": form})


@require_POST
@organization_required
def switch_organization(request: HttpRequest) -> HttpResponse:
    raw = request.POST.get("organization", "")
    # Ids are 64-bit integers: anything else would be a ValueError (or OverflowError) in the query.
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 18):
        return HttpResponseBadRequest("organization must be the id of one of your organizations.")
    membership = get_object_or_404(Membership, user=request.user, organization_id=int(raw))
    request.session[ACTIVE_ORG_SESSION_KEY] = membership.organization_id
    messages.info(request, f"Now working in {membership.organization.name}.")
    return redirect(_same_site(request, request.POST.get("next")) or "store:home")


def _same_site(request: HttpRequest, url: str | None) -> str | None:
    """`url` when it stays on this site (a path here or this host), else None: never an open redirect."""
    if url and url_has_allowed_host_and_scheme(url, allowed_hosts={request.get_host()},
                                               require_https=request.is_secure()):
        return url
    return None


@organization_required
def members(request: HttpRequest) -> HttpResponse:
    organization = request.organization  # type: ignore[attr-defined]
    is_admin = request.membership.is_admin  # type: ignore[attr-defined]
    invite_form = InvitationForm(request.POST or None) if is_admin else None
    new_invitation = None
    if request.method == "POST":
        if not is_admin:
            return HttpResponse("Only organization admins can invite people.", status=403)
        if invite_form is not None and invite_form.is_valid():
            try:
                new_invitation = people.invite(
                    organization, invite_form.cleaned_data["email"], invite_form.cleaned_data["role"],
                    request.user, request.build_absolute_uri("/"),
                )
            except ValidationError as error:
                _add_errors(invite_form, error)
            else:
                invite_form = InvitationForm()
    context = {
        "memberships": organization.memberships.select_related("user").order_by("role", "user__username"),
        "invitations": organization.invitations.filter(accepted_at=None).order_by("-created_at") if is_admin else [],
        "invite_form": invite_form,
        "new_invitation": new_invitation,
        "new_invitation_url": (
            people.invitation_url(new_invitation, request.build_absolute_uri("/")) if new_invitation else None
        ),
        "role_choices": RoleForm.base_fields["role"].choices,  # type: ignore[attr-defined]
        "is_admin": is_admin,
    }
    return render(request, "accounts/members.html", context)


@require_POST
@organization_admin_required
def change_role(request: HttpRequest, membership_id: int) -> HttpResponse:
    membership = get_for_organization(Membership, request.organization, pk=membership_id)  # type: ignore[attr-defined]
    form = RoleForm(request.POST)
    if form.is_valid():
        try:
            people.change_role(membership, form.cleaned_data["role"])
            messages.success(request, f"{membership.user.email} is now {membership.get_role_display()}.")
        except ValidationError as error:
            messages.error(request, " ".join(error.messages))
    return redirect("accounts:members")


@require_POST
@organization_admin_required
def remove_member(request: HttpRequest, membership_id: int) -> HttpResponse:
    membership = get_for_organization(Membership, request.organization, pk=membership_id)  # type: ignore[attr-defined]
    try:
        people.remove_member(membership)
        messages.success(request, f"Removed {membership.user.email}.")
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    return redirect("accounts:members")


@require_POST
@organization_admin_required
def revoke_invitation(request: HttpRequest, invitation_id: int) -> HttpResponse:
    invitation = get_for_organization(Invitation, request.organization, pk=invitation_id)  # type: ignore[attr-defined]
    invitation.delete()
    messages.success(request, f"Invitation for {invitation.email} revoked.")
    return redirect("accounts:members")


def accept_invitation(request: HttpRequest, token: str) -> HttpResponse:
    invitation = get_object_or_404(Invitation.objects.select_related("organization"), token=token)
    if not invitation.is_usable:
        return render(request, "accounts/invitation.html", {"invitation": invitation, "unusable": True}, status=410)
    if not request.user.is_authenticated:
        return render(request, "accounts/invitation.html", {"invitation": invitation})
    if request.method == "POST":
        membership = people.accept_invitation(invitation, request.user)
        request.session[ACTIVE_ORG_SESSION_KEY] = membership.organization_id
        messages.success(request, f"You joined {membership.organization.name}.")
        return redirect("store:home")
    return render(request, "accounts/invitation.html", {"invitation": invitation, "site_url": settings.SITE_URL})
