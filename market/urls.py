from django.urls import path

from market import installer_views, publisher_views, views

app_name = "market"

urlpatterns = [
    path("", views.storefront_page, name="storefront"),
    path("publish/", publisher_views.publish, name="publish"),
    path("installed/", installer_views.installed, name="installed"),
    path("installed/<slug:slug>/", installer_views.installation_detail, name="installation"),
    path("installed/<slug:slug>/deploy/", installer_views.deploy_installed, name="deploy"),
    path("installed/<slug:slug>/upgrade/", installer_views.upgrade, name="upgrade"),
    path("installed/<slug:slug>/uninstall/", installer_views.uninstall, name="uninstall"),
    path("installed/<slug:slug>/download/", installer_views.download, name="download"),
    path("<slug:slug>/", views.listing_detail, name="listing"),
    path("<slug:slug>/try/", views.try_it, name="try_it"),
    path("<slug:slug>/install/", installer_views.install, name="install"),
    path("<slug:slug>/review/", installer_views.review, name="review"),
    path("<slug:slug>/manage/", publisher_views.manage, name="manage"),
    path("<slug:slug>/versions/", publisher_views.add_version, name="add_version"),
    path("<slug:slug>/published/", publisher_views.set_published, name="set_published"),
    path("<slug:slug>/hide/", publisher_views.hide, name="hide"),
]
