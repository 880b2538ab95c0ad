"""GET /v1/files pages with `after` and `limit`, as its OpenAPI document says (newest first)."""

from finetune.datasets import create_dataset
from store.api_keys import create_api_key
from tests.factories import bearer
from tests.finetune.conftest import sentiment_csv


def test_it_pages_files_with_after(client, alice):
    key = create_api_key(alice.organization, "api")[1]
    files = [create_dataset(alice.organization, sentiment_csv(), f"{n}.csv").dataset for n in range(3)]
    first = client.get("/v1/files?limit=2", **bearer(key)).json()
    assert [f["id"] for f in first["data"]] == [files[2].openai_id, files[1].openai_id] and first["has_more"]
    rest = client.get(f"/v1/files?limit=2&after={files[1].openai_id}", **bearer(key)).json()
    assert [f["id"] for f in rest["data"]] == [files[0].openai_id] and not rest["has_more"]


def test_it_refuses_an_unknown_after(client, alice, charlie_dataset):
    key = create_api_key(alice.organization, "api")[1]
    response = client.get(f"/v1/files?after={charlie_dataset.openai_id}", **bearer(key))
    assert response.status_code == 400 and response.json()["error"]["param"] == "after"
