"""Installing a public listing, deploying it like an own model, upgrading, staying pinned, rolling back."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from market import installs
from market.models import Installation
from store import deploy
from store.models import DeploymentRevision
from tests.market.conftest import publishable, second_version


def test_it_installs_and_deploys_from_the_pages(charlie, listing):
    response = charlie.client.post(reverse("market:install", args=[listing.slug]))
    assert response.status_code == 302 and response["Location"] == reverse("market:installation",
                                                                            args=[listing.slug])
    installation = Installation.objects.get(organization=charlie.organization)
    assert installation.version.number == 1
    listing.refresh_from_db()
    assert listing.install_count == 1
    response = charlie.client.post(reverse("market:deploy", args=[listing.slug]), {"slug": "boots-helper"})
    assert response.status_code == 302 and response["Location"] == reverse("store:deployment_detail",
                                                                            args=["boots-helper"])
    deployment = charlie.organization.deployments.get(slug="boots-helper")
    assert deployment.tuned_model == listing.versions.get().tuned_model
    assert charlie.client.get(reverse("store:deployment_detail", args=["boots-helper"])).status_code == 200


def test_it_refuses_installing_your_own_listing(alice, listing):
    response = alice.client.post(reverse("market:install", args=[listing.slug]))
    assert response.status_code == 302 and not Installation.objects.exists()


def test_an_agent_cannot_install(bob, charlie, listing):
    assert bob.client.post(reverse("market:install", args=[listing.slug])).status_code == 403


def test_a_published_model_is_not_deployable_without_an_install(charlie, listing):
    tuned = listing.versions.get().tuned_model
    with pytest.raises(ValidationError):
        deploy.find_model(charlie.organization, tuned.short_id)
    with pytest.raises(ValidationError, match="does not exist"):
        deploy.create_or_update(charlie.organization, "sneaky", deploy.ModelChoice(tuned=tuned))


def test_two_organizations_deployments_of_one_version_share_one_engine_key(alice, charlie, listing, installed):
    """The inference worker keys its loaded adapters by the model key (workers/serving/model_cache.py:
    `entry.adapters[spec.key]`): one key means one resident copy for every installing organization."""
    from tests.conftest import _person

    _, charlies = installed
    dora = _person("dora@dora-sandals.example", "Dora Sandals")
    doras = installs.deploy_installed(installs.install(dora.organization, listing), "dora-helper")
    publishers = deploy.create_or_update(alice.organization, "shoe-helper",
                                         deploy.ModelChoice(tuned=listing.versions.get().tuned_model))
    assert charlies.model_key == doras.model_key == publishers.model_key == f"tuned:{charlies.tuned_model_id}"


def test_the_worker_resolves_both_installs_to_the_publishers_one_artifact(charlie, listing, installed, monkeypatch,
                                                                          tmp_path):
    from tests.conftest import _person
    from workers.serving import resolver

    monkeypatch.setattr(resolver, "model_folder", lambda base: tmp_path / base.slug)  # no weights are loaded
    monkeypatch.setattr(resolver, "close_old_connections", lambda: None)  # the test's transaction stays open
    from store import artifacts

    tuned = listing.versions.get().tuned_model
    (tmp_path / "adapter").mkdir()
    (tmp_path / "adapter" / "adapter_config.json").write_text('{"peft_type": "LORA"}')
    artifacts.publish_folder(tmp_path / "adapter", tuned.artifact_path)
    dora = _person("dora@dora-sandals.example", "Dora Sandals")
    doras = installs.deploy_installed(installs.install(dora.organization, listing), "dora-helper")
    _, charlies = installed
    specs = [resolver.resolve_model_key(d.model_key) for d in (charlies, doras)]
    assert specs[0] == specs[1]
    assert specs[0].key == f"tuned:{tuned.pk}" and specs[0].adapter_folder is not None
    assert tuned.short_id in specs[0].adapter_folder


def test_it_shows_a_new_version_and_stays_pinned_until_upgraded(alice, charlie, listing, installed, chat_base):
    installation, deployment = installed
    v2 = second_version(alice, listing, chat_base)
    deployment.refresh_from_db()
    assert deployment.tuned_model == listing.versions.get(number=1).tuned_model  # pinned
    page = charlie.client.get(reverse("market:installation", args=[listing.slug])).content.decode()
    assert "New version available: v2" in page
    assert "new version available: v2" in charlie.client.get(reverse("market:installed")).content.decode()
    [row] = installs.installed_deployments(installation)
    assert (row.version.number, row.newer) == (1, v2)


def test_an_upgrade_is_a_deployment_revision_that_rolls_back(alice, charlie, listing, installed, chat_base):
    installation, deployment = installed
    v2 = second_version(alice, listing, chat_base)
    response = charlie.client.post(reverse("market:upgrade", args=[listing.slug]), {"version": 2})
    assert response.status_code == 302
    deployment.refresh_from_db()
    installation.refresh_from_db()
    assert (deployment.tuned_model, deployment.revision, installation.version) == (v2.tuned_model, 2, v2)
    assert DeploymentRevision.objects.get(deployment=deployment, number=2).note == "model switched"
    response = charlie.client.post(reverse("store:deployment_rollback", args=[deployment.slug]), {"revision": 1})
    assert response.status_code == 302
    deployment.refresh_from_db()
    assert (deployment.tuned_model, deployment.revision) == (listing.versions.get(number=1).tuned_model, 3)


def test_an_upgrade_of_one_deployment_leaves_the_other_pinned(alice, charlie, listing, installed, chat_base):
    installation, first = installed
    second = installs.deploy_installed(installation, "boots-helper-2")
    v2 = second_version(alice, listing, chat_base)
    charlie.client.post(reverse("market:upgrade", args=[listing.slug]), {"version": 2, "deployment": second.slug})
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.tuned_model, second.tuned_model) == (listing.versions.get(number=1).tuned_model, v2.tuned_model)


def test_the_installer_edits_its_installed_deployment_on_the_store_page(charlie, listing, installed):
    _, deployment = installed
    url = reverse("store:deployment_edit", args=[deployment.slug])
    page = charlie.client.get(url).content.decode()
    assert "Installed from the marketplace" in page
    response = charlie.client.post(url, {"name": "Boots", "slug": deployment.slug,
                                         "model": deployment.tuned_model.short_id, "system_prompt": "Be brief.",
                                         "temperature": 0.2, "top_p": 1, "max_tokens": 100})
    assert response.status_code == 302
    deployment.refresh_from_db()
    assert (deployment.system_prompt, deployment.revision) == ("Be brief.", 2)


def test_it_refuses_to_uninstall_while_deployed(charlie, listing, installed):
    installation, deployment = installed
    with pytest.raises(ValidationError, match="boots-helper"):
        installs.uninstall(installation)
    deployment.delete()
    installs.uninstall(installation)
    listing.refresh_from_db()
    assert listing.install_count == 0
    with pytest.raises(ValidationError):
        deploy.find_model(charlie.organization, listing.versions.get().tuned_model.short_id)


def test_a_rollback_to_a_version_no_longer_installed_is_refused(alice, charlie, listing, installed, chat_base):
    installation, deployment = installed
    own = publishable(charlie.organization, chat_base, "boots")
    deploy.create_or_update(charlie.organization, deployment.slug, deploy.ModelChoice(tuned=own))
    installs.uninstall(installation)
    with pytest.raises(ValidationError, match="no longer installed"):
        deploy.rollback(deployment, 1)


def test_installer_downloads_weights_only_when_the_publisher_allows(charlie, listing, installed, monkeypatch):
    monkeypatch.setattr("market.installer_views.stream_zip", lambda name, root: iter([b"PK"]))
    url = reverse("market:download", args=[listing.slug])
    response = charlie.client.get(url)
    assert response.status_code == 200 and response["Content-Disposition"].endswith('v1.zip"')
    listing.allow_weights_download = False
    listing.save()
    assert charlie.client.get(url).status_code == 404


def test_the_installed_deployments_page_links_to_the_install_not_the_publishers_card(charlie, listing, installed):
    _, deployment = installed
    page = charlie.client.get(reverse("store:deployment_detail", args=[deployment.slug])).content.decode()
    assert reverse("market:installed") in page and "installed from the marketplace" in page
    assert reverse("store:tuned_detail", args=[deployment.tuned_model.short_id]) not in page
