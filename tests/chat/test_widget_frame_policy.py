"""The site-wide Content-Security-Policy leaves the widget's iframe page its own policy."""

from django.urls import reverse


def test_the_widget_frame_keeps_its_own_policy(client, widget):
    response = client.get(reverse("chat:widget_frame", args=[widget.public_key]))
    policy = {part.split()[0]: part.strip() for part in response["Content-Security-Policy"].split(";")}
    assert policy["frame-ancestors"] == "frame-ancestors https://shop.alice.example"
    assert "'unsafe-eval'" not in response["Content-Security-Policy"]  # the frame has no inline script
    assert "script-src" not in policy and policy["default-src"] == "default-src 'self'"  # scripts: files from here
    assert "X-Frame-Options" not in response


def test_other_pages_may_not_be_framed(client, db):
    response = client.get(reverse("accounts:login"))
    assert "frame-ancestors 'none'" in response["Content-Security-Policy"]
    assert response["X-Frame-Options"] == "DENY"
