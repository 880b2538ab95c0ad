from __future__ import annotations

import pytest

from store import deploy
from store.api_keys import create_api_key
from tests.chat.conftest import scripted_sentiment  # noqa: F401 - the widget test's sentiment boundary
from tests.upstreams.fake_upstream import FakeUpstream
from upstreams import registry

UPSTREAM_KEY = "sk-upstream-secret-0123456789"


@pytest.fixture
def fake_upstream():
    with FakeUpstream() as server:
        yield server


def host(organization, url: str, model_name: str, slug: str = "hosted", api_key: str = UPSTREAM_KEY):
    """`organization` registers an upstream and deploys it as `slug`."""
    upstream = registry.register(organization, f"Upstream {slug}", url, model_name, api_key)
    return upstream, deploy.create_or_update(organization, slug, deploy.ModelChoice(upstream=upstream),
                                             system_prompt="You are Alice's assistant.")


@pytest.fixture
def alice_key(alice):
    return create_api_key(alice.organization, "alice key")[1]
