import pytest

from store import deploy
from store.api_keys import create_api_key
from tests.factories import make_tuned


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
