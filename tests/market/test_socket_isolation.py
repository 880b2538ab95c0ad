"""Sockets: a conversation on an installer's widget (served by the publisher's model) is the installer's
alone; the publisher's console never opens it."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings

from tests.permission_world import _session_for

pytestmark = pytest.mark.django_db(transaction=True)


async def _connects(path: str, session: str) -> bool:
    from config.asgi import application

    headers = [(b"origin", b"http://testserver"), (b"host", b"testserver"),
               (b"cookie", f"{settings.SESSION_COOKIE_NAME}={session}".encode())]
    communicator = WebsocketCommunicator(application, path, headers=headers)
    connected, _ = await communicator.connect()
    await communicator.disconnect()
    return connected


def _installers_conversation(alice, charlie, chat_base):
    from chat.conversations import append_message, current_conversation
    from chat.identity import open_visitor
    from chat.models import Author
    from chat.widgets import create_widget
    from market import installs, listings
    from tests.market.conftest import publishable

    listing = listings.publish(alice.organization, publishable(alice.organization, chat_base), title="Shoe Helper",
                               summary="x", license="mit")
    deployment = installs.deploy_installed(installs.install(charlie.organization, listing), "boots-helper")
    widget = create_widget(charlie.organization, deployment, None, ["https://boots.example"])
    conversation = current_conversation(open_visitor(widget), create=True)
    append_message(conversation, Author.CUSTOMER, "my order number is 4411")
    return conversation


async def test_the_publishers_console_never_opens_an_installers_conversation(alice, charlie, catalog):
    conversation = await sync_to_async(_installers_conversation)(alice, charlie,
                                                                 catalog["smollm2-135m-instruct"])
    path = f"/ws/chat/console/{conversation.pk}/"
    alice_session, charlie_session = await sync_to_async(lambda: (_session_for(alice.user),
                                                                   _session_for(charlie.user)))()
    assert await _connects(path, charlie_session) is True
    assert await _connects(path, alice_session) is False
