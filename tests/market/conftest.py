"""Alice Shoes publishes; Charlie Boots installs. The tuned models are rows with an artifact path (no
weights are loaded: the serving engine is the boundary, scripted where a test calls it)."""

from __future__ import annotations

import pytest

from market import installs, listings
from store.usage import record_usage
from tests.factories import make_tuned


def publishable(organization, base, suffix="shoehelp", **kwargs):
    tuned = make_tuned(organization, base, suffix, **kwargs)
    tuned.artifact_path = f"tuned/{organization.pk}/{tuned.short_id}"
    tuned.metrics = {"task": tuned.task, "tuned": {"loss": 1.25, "perplexity": 3.5, "token_accuracy": 0.61}}
    tuned.save(update_fields=["artifact_path", "metrics"])
    return tuned


@pytest.fixture
def chat_base(catalog):
    return catalog["smollm2-135m-instruct"]


@pytest.fixture
def listing(alice, chat_base):
    """Alice's public listing of a dialogue model, version 1."""
    return listings.publish(alice.organization, publishable(alice.organization, chat_base), alice.user,
                            title="Shoe Helper", summary="Answers shoe shoppers", license="apache-2.0",
                            languages="en, de", allow_weights_download=True)


@pytest.fixture
def installed(charlie, listing):
    """Charlie installed Alice's listing and deployed it as `boots-helper`."""
    installation = installs.install(charlie.organization, listing, charlie.user)
    deployment = installs.deploy_installed(installation, "boots-helper", charlie.user)
    return installation, deployment


def second_version(alice, listing, chat_base, changelog="Knows about sandals."):
    return listings.add_version(listing, publishable(alice.organization, chat_base), changelog)


def use(deployment, requests=1):
    """What the serving path records when the deployment answers (store.usage, like /v1 and the widget)."""
    record_usage(deployment.organization_id, deployment.slug, 10, 5, requests=requests)
