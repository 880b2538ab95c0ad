from django.urls import path

from accounts import views

app_name = "accounts"

urlpatterns = [
    path("login/", views.LoginView.as_view(), name="login"),
    path("logout/", views.LogoutView.as_view(), name="logout"),
    path("signup/", views.signup, name="signup"),
    path("signup/<str:token>/", views.signup, name="signup_invited"),
    path("organizations/new/", views.new_organization, name="new_organization"),
    path("organizations/switch/", views.switch_organization, name="switch_organization"),
    path("members/", views.members, name="members"),
    path("members/<int:membership_id>/role/", views.change_role, name="change_role"),
    path("members/<int:membership_id>/remove/", views.remove_member, name="remove_member"),
    path("invitations/<int:invitation_id>/revoke/", views.revoke_invitation, name="revoke_invitation"),
    path("invite/<str:token>/", views.accept_invitation, name="accept_invitation"),
]
