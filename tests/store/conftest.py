import pytest

from store import deploy
from store.api_keys import create_api_key
from store.catalog import sync_catalog
from store.models import FoundationModel, TunedModel


@pytest.fixture
def catalog(db):
    sync_catalog()
    return {model.slug: model for model in FoundationModel.objects.all()}


def make_tuned(organization, base, suffix="faq", task="dialogue", method="lora", labels=None) -> TunedModel:
    version = TunedModel.objects.filter(organization=organization, base=base, suffix=suffix).count() + 1
    return TunedModel.objects.create(organization=organization, base=base, task=task, method=method, suffix=suffix,
                                     version=version, slug=f"{suffix}-v{version}", name=suffix.title(),
                                     labels=labels or [], default_system_prompt="You are Acme's assistant.")


@pytest.fixture
def alice_tuned(alice, catalog):
    return make_tuned(alice.organization, catalog["smollm2-135m-instruct"])


@pytest.fixture
def alice_deployment(alice, alice_tuned):
    return deploy.create_or_update(alice.organization, "acme-support", deploy.ModelChoice(tuned=alice_tuned),
                                   name="Acme support")


@pytest.fixture
def charlie_deployment(charlie, catalog):
    tuned = make_tuned(charlie.organization, catalog["smollm2-135m-instruct"], suffix="secret-bot")
    return deploy.create_or_update(charlie.organization, "charlie-bot", deploy.ModelChoice(tuned=tuned))


@pytest.fixture
def alice_key(alice):
    key, plaintext = create_api_key(alice.organization, "test key")
    return plaintext


@pytest.fixture
def charlie_key(charlie):
    return create_api_key(charlie.organization, "charlie key")[1]


def bearer(key: str) -> dict:
    return {"HTTP_AUTHORIZATION": f"Bearer {key}"}
