"""An installed model is deployable exactly like an own one: /v1 sentiment, the widget (with sentiment
scoring) and a knowledge base, all in the installer's organization, served by the publisher's artifact."""

from __future__ import annotations

import json

from chat.widgets import create_widget
from knowledge import deployments as knowledge_settings
from knowledge import sources
from market import installs, listings
from store.api_keys import create_api_key
from store.models import DeploymentRevision, UsageDaily
from tests.factories import bearer
from tests.market.conftest import publishable


def test_an_installed_sentiment_model_scores_through_v1_and_in_the_widget(alice, charlie, catalog, installed,
                                                                         monkeypatch, client):
    seen = []

    async def classify(request):
        seen.append(request.model_key)
        return {"results": [{"label": "negative", "score": 0.9, "scores": {"negative": 0.9}, "tokens": 4}],
                "prompt_tokens": 4}

    monkeypatch.setattr("store.api.views.classify", classify)
    moods = listings.publish(alice.organization, publishable(alice.organization, catalog["all-minilm-l6-v2"],
                                                             "moods", task="sentiment",
                                                             labels=["negative", "positive"]),
                             title="Mood Meter", summary="Scores complaints", license="mit")
    scorer = installs.deploy_installed(installs.install(charlie.organization, moods), "boots-moods")
    _, key = create_api_key(charlie.organization, "boots key")
    response = client.post("/v1/sentiment", data=json.dumps({"model": "boots-moods", "input": "Late again"}),
                           content_type="application/json", **bearer(key))
    assert response.status_code == 200 and response.json()["data"][0]["label"] == "negative"
    assert seen == [f"tuned:{moods.versions.get().tuned_model_id}"]
    assert UsageDaily.objects.get().organization == charlie.organization
    widget = create_widget(charlie.organization, installed[1], scorer, ["https://boots.example"])
    assert (widget.deployment, widget.sentiment_deployment) == (installed[1], scorer)


def test_an_installed_dialogue_model_takes_the_installers_knowledge_base(charlie, installed):
    _, deployment = installed
    knowledge_base = sources.create_knowledge_base(charlie.organization, "Boots help")
    knowledge_settings.configure(deployment, knowledge_base=knowledge_base, policy="quote", threshold=0.5)
    deployment.refresh_from_db()
    assert deployment.revision == 2
    assert DeploymentRevision.objects.get(deployment=deployment, number=2).tuned_model == deployment.tuned_model
