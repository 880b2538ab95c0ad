from django.contrib.staticfiles import finders
from django.templatetags.static import static


def test_favicon_ico_leads_to_the_site_icon_so_admin_pages_have_one(client):
    """The admin's pages name no icon, so browsers ask /favicon.ico: it must not be a 404."""
    response = client.get("/favicon.ico")
    assert response.status_code == 301 and response["Location"] == static("core/favicon.svg")
    assert finders.find("core/favicon.svg")
