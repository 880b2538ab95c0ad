"""Property-based tests of every /v1 operation from its own OpenAPI document (schemathesis, in-process over
WSGI, deterministic): no 5xx, and every response matches the schema the document declares for its status.

No inference worker runs here: inference calls reach the broker and answer the documented 503
`no_inference_worker` within SERVING_ACCEPT_TIMEOUT, which is the one 5xx this suite accepts.
"""

from __future__ import annotations

import json

import hypothesis
import pytest
import schemathesis
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections

from finetune.datasets import create_dataset
from store import deploy
from store.api_keys import create_api_key
from tests.factories import make_tuned
from tests.finetune.conftest import sentiment_csv

EXAMPLES_PER_OPERATION = 25

# Driving the ASGI-first app through WSGI makes Django consume the SSE stream synchronously, and say so.
pytestmark = pytest.mark.filterwarnings("ignore:StreamingHttpResponse must consume asynchronous iterators")


@pytest.fixture(autouse=True)
def _one_connection(db):
    # The test runs inside one database transaction; Django's own test client keeps its connection open
    # across requests by unhooking these two handlers, and so must a WSGI app driven in-process.
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture
def existing(alice, catalog, settings) -> dict[str, str]:
    """Ids that exist, so that half the generated bodies get past "not found" into the deeper checks."""
    settings.SERVING_ACCEPT_TIMEOUT = 0.05
    tuned = make_tuned(alice.organization, catalog["smollm2-135m-instruct"])
    deploy.create_or_update(alice.organization, "acme-support", deploy.ModelChoice(tuned=tuned))
    moods = make_tuned(alice.organization, catalog["all-minilm-l6-v2"], "moods", task="sentiment", method="full",
                       labels=["negative", "positive"])
    deploy.create_or_update(alice.organization, "moods", deploy.ModelChoice(tuned=moods))
    dataset = create_dataset(alice.organization, sentiment_csv(), "support.csv").dataset
    return {"/v1/chat/completions": "acme-support", "/v1/embeddings": "all-minilm-l6-v2", "/v1/sentiment": "moods",
            "/v1/fine_tuning/jobs": "all-minilm-l6-v2", "training_file": dataset.openai_id}


@pytest.fixture
def api_key(alice):
    return create_api_key(alice.organization, "schemathesis", requests_per_minute=100_000,
                          tokens_per_minute=100_000_000)[1]


# The document is served without touching the database, so it is read once, at collection.
schema = schemathesis.openapi.from_wsgi("/v1/openapi.json", get_wsgi_application())


def not_a_server_error_but_no_worker(ctx, response, case):
    """not_a_server_error, except the documented answer when no inference worker is up."""
    if response.status_code == 503 and response.headers.get("retry-after"):  # lowercase keys, list values
        body = json.loads(response.content)
        if body["error"]["code"] in ("no_inference_worker", "timeout", "expired"):
            return None
    return schemathesis.checks.not_a_server_error(ctx, response, case)


@schema.parametrize()
@hypothesis.settings(max_examples=EXAMPLES_PER_OPERATION, derandomize=True, deadline=None, database=None,
                     suppress_health_check=list(hypothesis.HealthCheck))
def test_every_operation_answers_within_its_document(case, api_key, existing):
    # Random model and file ids all answer 404; about half the bodies name real ones (deterministically), so the
    # generated options reach the deployment checks, the broker and the job checks behind them.
    body = case.body if isinstance(case.body, dict) else None
    if body is not None and isinstance(body.get("model"), str) and len(json.dumps(body, default=str)) % 2:
        body["model"] = existing.get(case.operation.path, body["model"])
        if "training_file" in body:
            body["training_file"] = existing["training_file"]
    case.call_and_validate(headers={"Authorization": f"Bearer {api_key}"},
                           checks=[not_a_server_error_but_no_worker,
                                   schemathesis.checks.response_schema_conformance])
