"""The deployment playground refuses malformed bodies with a 400 that names the problem."""

import json

import pytest

from store import deploy

URL = "/deployments/shop-bot/playground/chat"


@pytest.fixture
def shop_bot(alice, catalog):
    return deploy.create_or_update(alice.organization, "shop-bot",
                                   deploy.ModelChoice(base=catalog["smollm2-135m-instruct"]))


def post(person, body: str):
    return person.client.post(URL, data=body, content_type="application/json")


@pytest.mark.parametrize(("body", "named"), [
    ("[]", "JSON object"),
    ('"hello"', "JSON object"),
    ("{", "Malformed JSON"),
    ('{"messages": {"role": "user"}}', "messages"),
    ('{"messages": [1]}', "messages[0]"),
    ('{"messages": [{"role": "user", "content": 5}]}', "messages[0].content"),
    ('{"messages": [{"role": "user", "content": ["a"]}]}', "messages[0].content"),
    ('{"messages": [{"role": 7, "content": "hi"}]}', "messages[0].role"),
    ('{"messages": [{"role": "user", "content": "hi\\u0000"}]}', "U+0000"),
    ('{"messages": [{"role": "user", "content": "\\ud800"}]}', "surrogate"),
    ('{"messages": [{"role": "user", "content": NaN}]}', "NaN"),
    ('{"messages": []}', "ending with a user message"),
    ('{"messages": [{"role": "assistant", "content": "hi"}]}', "ending with a user message"),
])
def test_it_answers_400_naming_the_problem(alice, shop_bot, body, named):
    response = post(alice, body)
    assert response.status_code == 400, response.content
    error = json.loads(response.content)["error"]
    assert named in error["message"]


def test_it_refuses_a_body_that_is_not_utf8(alice, shop_bot):
    response = alice.client.post(URL, data=b'{"messages": "\xff"}', content_type="application/json")
    assert response.status_code == 400
    assert "UTF-8" in json.loads(response.content)["error"]["message"]


def test_it_refuses_a_get(alice, shop_bot):
    assert alice.client.get(URL).status_code == 405
