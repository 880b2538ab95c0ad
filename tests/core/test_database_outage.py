"""The database unreachable for a moment: 503 pages and JSON errors, no traceback, and back by itself."""

from contextlib import contextmanager

import pytest
from django.db import InterfaceError, OperationalError, connection
from django.test import Client

from store.api_keys import create_api_key

OUTAGES = [OperationalError("could not connect to server: Connection refused"),
           InterfaceError("connection already closed")]


@contextmanager
def database_down(error: Exception):
    """Every query of this thread's connection fails the way psycopg fails when the server is gone."""
    def refuse(*_args, **_kwargs):
        raise error

    with connection.execute_wrapper(refuse):
        yield


@pytest.fixture
def signed_in(alice) -> Client:
    # Django's test client re-raises any exception a request logged, even one answered well; a real
    # server does not, and that answer is what is under test.
    client = Client(raise_request_exception=False)
    client.force_login(alice.user)
    return client


def assert_no_traceback(body: str) -> None:
    assert "Traceback" not in body and "OperationalError" not in body and "InterfaceError" not in body


@pytest.mark.parametrize("error", OUTAGES, ids=["operational", "interface"])
def test_it_answers_a_page_with_503_and_recovers(db, error):
    client = Client(raise_request_exception=False)
    with database_down(error):
        response = client.get("/")
    assert response.status_code == 503 and response["Retry-After"] == "5"
    body = response.content.decode()
    assert "Back in a moment" in body and response["Content-Type"].startswith("text/html")
    assert_no_traceback(body)
    assert client.get("/").status_code == 200


def test_it_answers_503_when_a_middleware_is_the_first_to_query(signed_in):
    # The session and the active organization are read by middleware, before any view runs.
    with database_down(OUTAGES[0]):
        response = signed_in.get("/finetune/")
    assert response.status_code == 503 and "Back in a moment" in response.content.decode()
    assert_no_traceback(response.content.decode())
    assert signed_in.get("/finetune/").status_code == 200


def test_the_api_answers_503_in_openai_shape_and_recovers(alice):
    key = create_api_key(alice.organization, "outage key")[1]
    client = Client(raise_request_exception=False, HTTP_AUTHORIZATION=f"Bearer {key}")
    with database_down(OUTAGES[0]):
        response = client.get("/v1/models")
    assert response.status_code == 503 and response["Retry-After"] == "5"
    assert response.json() == {"error": {"message": "The database is unavailable for a moment. Please retry in a "
                                                    "few seconds.", "type": "server_error", "param": None,
                                         "code": "database_unavailable"}}
    assert client.get("/v1/models").status_code == 200


def test_other_json_endpoints_answer_503_json(db):
    client = Client(raise_request_exception=False)
    with database_down(OUTAGES[0]):
        response = client.get("/chat/widget/no-such-key/config.json")
    assert response.status_code == 503
    assert response.json()["code"] == "database_unavailable"
    assert client.get("/chat/widget/no-such-key/config.json").status_code == 404


def test_other_errors_are_still_500(db, settings):
    client = Client(raise_request_exception=False)
    with connection.execute_wrapper(lambda *_: 1 / 0):
        response = client.get("/")
    assert response.status_code == 500
