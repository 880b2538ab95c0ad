from store.api_keys import create_api_key
from tests.factories import bearer


def test_it_lists_deployments_tuned_models_and_the_catalog(client, alice_deployment, alice_tuned, alice_key):
    data = client.get("/v1/models", **bearer(alice_key)).json()
    assert data["object"] == "list"
    ids = {m["id"]: m for m in data["data"]}
    assert ids["acme-support"]["kind"] == "deployment"
    assert ids["acme-support"]["parent"] == alice_tuned.openai_id
    assert ids["acme-support"]["root"] == "smollm2-135m-instruct"
    assert ids[alice_tuned.openai_id]["owned_by"] == alice_deployment.organization.slug
    assert {"smollm2-135m-instruct", "all-minilm-l6-v2"} <= set(ids)
    assert all(m["object"] == "model" and "/" not in m["id"] for m in data["data"])


def test_it_never_lists_another_organizations_models(client, alice_key, charlie_deployment):
    ids = [m["id"] for m in client.get("/v1/models", **bearer(alice_key)).json()["data"]]
    assert "charlie-bot" not in ids and not any("secret-bot" in i for i in ids)


def test_it_answers_404_alike_for_foreign_and_unknown_models(client, alice_key, charlie_deployment):
    foreign = client.get("/v1/models/charlie-bot", **bearer(alice_key))
    unknown = client.get("/v1/models/no-such-bot", **bearer(alice_key))
    assert foreign.status_code == unknown.status_code == 404
    assert foreign.json()["error"]["message"].replace("charlie-bot", "X") == \
        unknown.json()["error"]["message"].replace("no-such-bot", "X")
    assert foreign.json()["error"]["code"] == "model_not_found"


def test_it_retrieves_a_tuned_model_by_its_ft_id(client, alice_key, alice_tuned):
    response = client.get(f"/v1/models/{alice_tuned.openai_id}", **bearer(alice_key))
    assert response.status_code == 200
    assert response.json()["id"].startswith("ft:smollm2-135m-instruct:alice-shoes:faq:")


def test_a_restricted_key_sees_only_its_deployments(client, alice, alice_deployment, alice_tuned):
    _, plaintext = create_api_key(alice.organization, "widget only", [alice_deployment])
    ids = [m["id"] for m in client.get("/v1/models", **bearer(plaintext)).json()["data"]]
    assert ids == ["acme-support"]
    assert client.get("/v1/models/smollm2-135m-instruct", **bearer(plaintext)).status_code == 404


def test_unknown_routes_answer_in_openai_shape(client, alice_key):
    response = client.get("/v1/completions", **bearer(alice_key))
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "unknown_url"


def test_the_openapi_document_and_docs_page(client, db):
    spec = client.get("/v1/openapi.json").json()
    assert spec["openapi"].startswith("3.1")
    assert {"/v1/chat/completions", "/v1/sentiment", "/v1/fine_tuning/jobs", "/v1/files"} <= set(spec["paths"])
    assert "ChatCompletionRequest" in spec["components"]["schemas"]
    content = spec["paths"]["/v1/files/{file_id}/content"]["get"]["responses"]["200"]["content"]
    assert set(content) == {"text/csv", "application/jsonl"}  # the file itself, not a JSON object
    page = client.get("/v1/docs").content.decode()
    assert "/v1/files/{file_id}/content" in page and "the file&#x27;s bytes" in page
    assert "/v1/chat/completions" in page and "https://" not in page.split("<body")[1].split("</footer>")[0]
