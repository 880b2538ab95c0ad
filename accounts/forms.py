from django import forms
from django.contrib.auth import password_validation
from django.contrib.auth.forms import AuthenticationForm

from accounts.models import Role


class EmailAuthenticationForm(AuthenticationForm):
    username = forms.CharField(
        label="Email", widget=forms.EmailInput(attrs={"autofocus": True, "autocomplete": "email"})
    )

    def clean_username(self) -> str:
        return self.cleaned_data["username"].strip().lower()


class SignupForm(forms.Form):
    name = forms.CharField(label="Your name", max_length=150, required=False)
    email = forms.EmailField(widget=forms.EmailInput(attrs={"autocomplete": "email"}))
    password = forms.CharField(widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}))
    organization = forms.CharField(label="Business name", max_length=120)

    def __init__(self, *args, invitation=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.invitation = invitation
        if invitation is not None:
            # Joining through an invitation: the organization already exists.
            del self.fields["organization"]
            self.fields["email"].initial = invitation.email

    def clean_password(self) -> str:
        password = self.cleaned_data["password"]
        password_validation.validate_password(password)
        return password


class OrganizationForm(forms.Form):
    name = forms.CharField(label="Business name", max_length=120)


class InvitationForm(forms.Form):
    email = forms.EmailField()
    role = forms.ChoiceField(choices=Role.choices, initial=Role.AGENT)


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)
