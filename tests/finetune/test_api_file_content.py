"""GET /v1/files/{id}/content: the uploaded bytes (OpenAI's `client.files.content(id)`), to their organization only."""

from tests.factories import bearer
from tests.finetune.conftest import sentiment_csv
from tests.finetune.test_api import key_for, upload
from tests.finetune.test_runner import dialogue_jsonl


def test_it_returns_the_uploaded_bytes_as_an_attachment(client, alice):
    key = key_for(alice)
    data = sentiment_csv()
    file_id = upload(client, key, data, name="support tickets.csv").json()["id"]
    response = client.get(f"/v1/files/{file_id}/content", **bearer(key))
    assert response.status_code == 200
    assert response.content == data
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="support tickets.csv"'


def test_it_serves_jsonl_as_jsonl(client, alice):
    key = key_for(alice)
    data = dialogue_jsonl()
    file_id = upload(client, key, data, name="moods.jsonl").json()["id"]
    response = client.get(f"/v1/files/{file_id}/content", **bearer(key))
    assert response.status_code == 200 and response.content == data
    assert response["Content-Type"] == "application/jsonl"


def test_it_answers_404_for_another_organizations_file_and_unknown_ids(client, alice, charlie_dataset):
    key = key_for(alice)
    for file_id in (charlie_dataset.openai_id, "file-nope", "nope"):
        response = client.get(f"/v1/files/{file_id}/content", **bearer(key))
        assert response.status_code == 404, file_id
        error = response.json()["error"]
        assert error["type"] == "invalid_request_error" and error["param"] == "file_id"
        assert file_id in error["message"]
    other = client.get(f"/v1/files/{charlie_dataset.openai_id}/content", **bearer(key)).json()
    unknown = client.get("/v1/files/file-nope/content", **bearer(key)).json()
    assert other["error"]["message"].replace(charlie_dataset.openai_id, "X") == \
        unknown["error"]["message"].replace("file-nope", "X")  # nothing tells a foreign file from a missing one


def test_it_says_so_when_the_stored_file_is_gone(client, alice, sentiment_dataset):
    sentiment_dataset.file.storage.delete(sentiment_dataset.file.name)
    response = client.get(f"/v1/files/{sentiment_dataset.openai_id}/content", **bearer(key_for(alice)))
    assert response.status_code == 404
    assert "missing from this server's storage" in response.json()["error"]["message"]


def test_it_needs_a_key(client, sentiment_dataset):
    response = client.get(f"/v1/files/{sentiment_dataset.openai_id}/content")
    assert response.status_code == 401 and "error" in response.json()
