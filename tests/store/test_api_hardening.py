"""/v1 request bodies a hostile or careless client sends: each is refused with a 400 in OpenAI's error shape
that names the problem, never a 500."""

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from store import deploy
from tests.factories import bearer, make_tuned
from tests.finetune.conftest import sentiment_csv


def post_raw(client, key, raw: str | bytes, path="/v1/chat/completions"):
    return client.post(path, data=raw, content_type="application/json", **bearer(key))


def chat(**extra) -> dict:
    return {"model": "acme-support", "messages": [{"role": "user", "content": "Hi"}], **extra}


def assert_openai_error(response, status: int = 400) -> dict:
    assert response.status_code == status, response.content
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return error


@pytest.fixture
def alice_sentiment(alice, catalog):
    tuned = make_tuned(alice.organization, catalog["all-minilm-l6-v2"], "moods", task="sentiment", method="full",
                       labels=["negative", "positive"])
    return deploy.create_or_update(alice.organization, "moods", deploy.ModelChoice(tuned=tuned))


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/embeddings", "/v1/sentiment",
                                  "/v1/fine_tuning/jobs"])
def test_it_refuses_deeply_nested_json(client, alice_key, path):
    raw = '{"model": "x", "messages": ' + "[" * 100_000 + "]" * 100_000 + "}"
    error = assert_openai_error(post_raw(client, alice_key, raw, path))
    assert "nests deeper" in error["message"]


def test_it_refuses_nan_and_infinity(client, alice_deployment, alice_key):
    error = assert_openai_error(post_raw(client, alice_key, '{"model": "acme-support", "temperature": NaN, '
                                                           '"messages": [{"role": "user", "content": "Hi"}]}'))
    assert "NaN" in error["message"]


def test_it_still_names_malformed_json(client, alice_key, db):
    error = assert_openai_error(post_raw(client, alice_key, "{nope"))
    assert "could not parse the JSON" in error["message"]


@pytest.mark.parametrize(("seed", "limit"), [(2**70, "4294967295"), (2**32, "4294967295"), (-1, "0")])
def test_it_refuses_a_seed_outside_the_sampler_range(client, alice_deployment, alice_key, seed, limit):
    error = assert_openai_error(post_raw(client, alice_key, json.dumps(chat(seed=seed))))
    assert error["param"] == "seed" and limit in error["message"]


def test_it_refuses_a_lone_surrogate_in_message_content_naming_the_field(client, alice_deployment, alice_key):
    raw = json.dumps(chat(messages=[{"role": "user", "content": "hi \ud800 there"}]))
    assert "\\ud800" in raw  # the escape a client sends; json.loads turns it into an unencodable str
    error = assert_openai_error(post_raw(client, alice_key, raw))
    assert error["param"] == "messages[0].content" and "surrogate" in error["message"]


def test_it_refuses_a_lone_surrogate_in_a_content_part(client, alice_deployment, alice_key):
    raw = json.dumps(chat(messages=[{"role": "user", "content": [{"type": "text", "text": "\udfff"}]}]))
    error = assert_openai_error(post_raw(client, alice_key, raw))
    assert error["param"] == "messages[0].content[0].text"


def test_it_refuses_a_control_character_in_content(client, alice_deployment, alice_key):
    error = assert_openai_error(post_raw(client, alice_key, json.dumps(chat(
        messages=[{"role": "user", "content": "bell\u0007"}]))))
    assert error["param"] == "messages[0].content" and "U+0007" in error["message"]


@pytest.mark.parametrize(("value", "param"), [("\ud800", "input"), (["fine", "\ud800"], "input[1]")])
def test_it_refuses_a_lone_surrogate_in_sentiment_input(client, alice_sentiment, alice_key, value, param):
    raw = json.dumps({"model": "moods", "input": value})
    error = assert_openai_error(post_raw(client, alice_key, raw, "/v1/sentiment"))
    assert error["param"] == param and "surrogate" in error["message"]


def test_it_refuses_a_lone_surrogate_in_embedding_input(client, alice_key, catalog):
    raw = json.dumps({"model": "all-minilm-l6-v2", "input": "\ud800"})
    assert assert_openai_error(post_raw(client, alice_key, raw, "/v1/embeddings"))["param"] == "input"


@pytest.mark.parametrize("stream", ["yes", "true", 1, "1"])
def test_it_wants_a_json_boolean_for_stream(client, alice_deployment, alice_key, stream):
    error = assert_openai_error(post_raw(client, alice_key, json.dumps(chat(stream=stream))))
    assert error["param"] == "stream" and "boolean" in error["message"]


def test_it_wants_json_numbers_not_strings(client, alice_deployment, alice_key):
    error = assert_openai_error(post_raw(client, alice_key, json.dumps(chat(max_tokens="12"))))
    assert error["param"] == "max_tokens"


def test_it_refuses_a_multipart_upload_without_a_boundary(client, alice_key, db):
    response = client.post("/v1/files", data=b"--x\r\nnothing\r\n", content_type="multipart/form-data",
                           **bearer(alice_key))
    error = assert_openai_error(response)
    assert "boundary" in error["message"]


def upload_with(client, key, **extra):
    data = {"file": SimpleUploadedFile("a.csv", sentiment_csv()), "purpose": "fine-tune", **extra}
    return client.post("/v1/files", data, **bearer(key))


def test_it_refuses_a_multipart_upload_with_too_many_fields(client, alice_key, db):
    error = assert_openai_error(upload_with(client, alice_key, **{f"field{i}": "x" for i in range(1100)}))
    assert "DATA_UPLOAD_MAX_NUMBER_FIELDS" in error["message"]


def test_it_refuses_a_multipart_upload_with_too_many_files(client, alice_key, db):
    extra = {f"file{i}": SimpleUploadedFile(f"{i}.csv", b"x") for i in range(120)}
    assert "DATA_UPLOAD_MAX_NUMBER_FILES" in assert_openai_error(upload_with(client, alice_key, **extra))["message"]


def test_it_refuses_an_oversized_form_field_with_413(client, alice_key, db):
    assert_openai_error(upload_with(client, alice_key, note="x" * 3_000_000), status=413)


def test_it_refuses_a_file_upload_that_is_not_multipart(client, alice_key, db):
    error = assert_openai_error(post_raw(client, alice_key, '{"purpose": "fine-tune"}', "/v1/files"))
    assert "multipart/form-data" in error["message"]
