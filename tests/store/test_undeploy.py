"""Undeploying: a deployment a chat widget still uses stays, and the admin is told why (not a server error)."""

from chat.widgets import create_widget
from store.models import Deployment


def test_it_refuses_to_undeploy_a_deployment_a_widget_uses(alice, alice_deployment):
    create_widget(alice.organization, alice_deployment, title="Help")
    response = alice.client.post("/deployments/acme-support/delete/", follow=True)
    assert response.redirect_chain[-1] == ("/deployments/acme-support/", 302)
    assert "used by the chat widget Help" in response.content.decode()
    assert Deployment.objects.filter(pk=alice_deployment.pk).exists()


def test_it_undeploys_a_deployment_nothing_uses(alice, alice_deployment):
    response = alice.client.post("/deployments/acme-support/delete/")
    assert response.status_code == 302 and response["Location"] == "/deployments/"
    assert not Deployment.objects.filter(pk=alice_deployment.pk).exists()
