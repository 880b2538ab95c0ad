import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command

from store import deploy
from store.models import Deployment, DeploymentRevision
from store.tuned import TunedModelInUse, delete_tuned_model
from tests.factories import make_tuned


def test_it_deploys_a_tuned_model_with_its_trained_system_prompt(alice_deployment, alice_tuned):
    assert alice_deployment.model_key == f"tuned:{alice_tuned.pk}"
    assert alice_deployment.system_prompt == "You are Acme's assistant."
    assert alice_deployment.revisions.get().note == "created"


def test_it_refuses_a_slug_that_shadows_a_catalog_model(alice, alice_tuned):
    with pytest.raises(ValidationError, match="id of a catalog model"):
        deploy.create_or_update(alice.organization, "smollm2-135m-instruct", deploy.ModelChoice(tuned=alice_tuned))


def test_switching_the_version_is_a_new_revision_and_can_be_rolled_back(alice, alice_deployment, catalog):
    v2 = make_tuned(alice.organization, catalog["smollm2-135m-instruct"])
    switched = deploy.create_or_update(alice.organization, "acme-support", deploy.ModelChoice(tuned=v2))
    assert (switched.pk, switched.revision, switched.tuned_model) == (alice_deployment.pk, 2, v2)
    rolled = deploy.rollback(switched, 1)
    assert rolled.tuned_model == alice_deployment.tuned_model and rolled.revision == 3
    assert list(DeploymentRevision.objects.values_list("note", flat=True)) == [
        "rolled back to revision 1", "model switched", "created"]


def test_an_unchanged_update_writes_no_revision(alice, alice_deployment, alice_tuned):
    again = deploy.create_or_update(alice.organization, "acme-support", deploy.ModelChoice(tuned=alice_tuned))
    assert again.revision == 1 and DeploymentRevision.objects.count() == 1


def test_it_refuses_to_switch_a_dialogue_deployment_to_a_sentiment_model(alice, alice_deployment, catalog):
    moods = make_tuned(alice.organization, catalog["all-minilm-l6-v2"], "moods", task="sentiment")
    with pytest.raises(ValidationError, match="serves dialogue"):
        deploy.create_or_update(alice.organization, "acme-support", deploy.ModelChoice(tuned=moods))


def test_it_finds_models_by_slug_ft_id_or_catalog_slug(alice, alice_tuned, charlie_deployment):
    assert deploy.find_model(alice.organization, "faq-v1").tuned == alice_tuned
    assert deploy.find_model(alice.organization, alice_tuned.openai_id).tuned == alice_tuned
    assert deploy.find_model(alice.organization, "smollm2-135m-instruct").base.slug == "smollm2-135m-instruct"
    with pytest.raises(ValidationError):
        deploy.find_model(alice.organization, "secret-bot-v1")  # charlie's


def test_a_deployed_tuned_model_cannot_be_deleted(alice_deployment, alice_tuned):
    with pytest.raises(TunedModelInUse, match="undeploy it first"):
        delete_tuned_model(alice_tuned)
    deploy.delete_deployment(alice_deployment)
    delete_tuned_model(alice_tuned)


def test_the_deploy_command_is_idempotent_and_prints_the_model_id_last(alice, alice_tuned, capsys):
    for _ in range(2):
        call_command("deploy", "--org", alice.organization.slug, "--model", "faq-v1", "--name", "shop-bot",
                     "--system-prompt", "Be kind.")
        assert capsys.readouterr().out.strip().splitlines()[-1] == "shop-bot"
    deployment = Deployment.objects.get(slug="shop-bot")
    assert deployment.revision == 1 and deployment.system_prompt == "Be kind."


def test_the_deploy_command_explains_an_unknown_model(alice):
    with pytest.raises(CommandError, match="No tuned model or catalog model called 'nope'"):
        call_command("deploy", "--org", alice.organization.slug, "--model", "nope", "--name", "x")


def test_the_pages_create_edit_and_roll_back(alice, alice_tuned, catalog):
    response = alice.client.post("/deployments/new/", {
        "name": "Shop bot", "slug": "shop-bot", "model": "faq-v1", "system_prompt": "Hi", "temperature": 0.2,
        "top_p": 1, "max_tokens": 100})
    assert response.status_code == 302
    alice.client.post("/deployments/shop-bot/edit/", {
        "name": "Shop bot", "model": "smollm2-135m-instruct", "system_prompt": "Hi", "temperature": 0.2, "top_p": 1,
        "max_tokens": 100})
    assert Deployment.objects.get().base_model.slug == "smollm2-135m-instruct"
    alice.client.post("/deployments/shop-bot/rollback/", {"revision": 1})
    assert Deployment.objects.get().tuned_model == alice_tuned
    page = alice.client.get("/deployments/shop-bot/").content.decode()
    assert "client.chat.completions.create" in page and '"model": "shop-bot"' in page


NEW_BOT = {"model": "smollm2-135m-instruct", "system_prompt": "Be brief.", "temperature": 0.7, "top_p": 1,
           "max_tokens": 64}


def test_a_new_deployment_never_takes_over_an_existing_model_id(alice, alice_deployment, catalog):
    response = alice.client.post("/deployments/new/", {"name": "Another bot", "slug": "acme-support", **NEW_BOT})
    assert response.status_code == 200
    assert "You already have a deployment called &#x27;acme-support&#x27;" in response.content.decode()
    alice_deployment.refresh_from_db()
    assert alice_deployment.revision == 1 and alice_deployment.tuned_model is not None  # untouched
    assert Deployment.objects.count() == 1
    # The same name, no model id given: the id made from the name clashes just the same.
    response = alice.client.post("/deployments/new/", {"name": "Acme support", "slug": "", **NEW_BOT})
    assert response.status_code == 200 and Deployment.objects.count() == 1


def test_the_model_id_is_made_from_the_name_when_left_empty(alice, catalog):
    response = alice.client.post("/deployments/new/", {"name": "Bike Co helper!", "slug": "", **NEW_BOT})
    assert response.status_code == 302 and response["Location"] == "/deployments/bike-co-helper/"
    assert Deployment.objects.get().slug == "bike-co-helper"
    response = alice.client.post("/deployments/new/", {"name": "!!!", "slug": "", **NEW_BOT})
    assert "letters, digits and dashes" in response.content.decode()
    # A catalog model's id is refused on the form (it was a server error: the view read a field-keyed error
    # as a plain one).
    response = alice.client.post("/deployments/new/", {"name": "x", "slug": "smollm2-135m-instruct", **NEW_BOT})
    assert response.status_code == 200 and "is the id of a catalog model" in response.content.decode()


def test_outsiders_and_agents_cannot_touch_deployments(alice_deployment, bob, charlie):
    for person, status in ((charlie, 404), (bob, 403)):
        assert person.client.get("/deployments/acme-support/").status_code == status
        assert person.client.post("/deployments/acme-support/delete/").status_code == status
        assert person.client.post("/deployments/acme-support/playground/chat", data="{}",
                                  content_type="application/json").status_code == status
    assert Deployment.objects.filter(pk=alice_deployment.pk).exists()
