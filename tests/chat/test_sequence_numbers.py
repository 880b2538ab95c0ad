"""Sequence numbers stay unique and gap-free with concurrent writers, on SQLite and PostgreSQL."""

import threading

import pytest
from django.db import connection

from chat.conversations import append_message, current_conversation
from chat.identity import open_visitor
from chat.models import Author

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres]


def test_concurrent_writers_get_distinct_consecutive_numbers(widget):
    conversation = current_conversation(open_visitor(widget), create=True)
    errors: list[Exception] = []

    def write(worker: int) -> None:
        try:
            for index in range(10):
                append_message(conversation, Author.CUSTOMER if worker % 2 else Author.BOT, f"{worker}-{index}")
        except Exception as error:  # surfaced below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=write, args=(worker,)) for worker in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    seqs = sorted(conversation.messages.values_list("seq", flat=True))
    assert seqs == list(range(1, 41))
    conversation.refresh_from_db()
    assert conversation.last_seq == 40
