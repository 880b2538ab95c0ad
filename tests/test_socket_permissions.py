"""The WebSocket half of the permission matrix: each socket route, through the real ASGI application
(origin check, session cookie, consumers) and the in-memory channel layer, accepts exactly the roles its
row in tests/permission_matrix.py says. Outsiders never reach another organization's sockets; the
widget's socket is public, but only with a visitor token of that widget and from a page of this site.

Transactional (consumers read the database from their own thread), so the world is built per test.
"""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.core import signing

from tests.permission_matrix import SOCKETS
from tests.permission_world import PAGE_ROLES, World, build_world

pytestmark = pytest.mark.django_db(transaction=True)
SITE = b"http://testserver"


@pytest.fixture
def world(transactional_db) -> World:
    # No knowledge source: its embedding task would be sent to a broker when the world commits.
    return build_world(with_knowledge_source=False)


def socket_path(route: str, w: World) -> str:
    values = {"<str:public_id>": w.job.public_id if "/jobs/" in route else w.dataset.public_id,
              "<int:knowledge_base_id>": str(w.knowledge_base.pk), "<int:conversation_id>": str(w.conversation.pk)}
    for placeholder, value in values.items():
        route = route.replace(placeholder, value)
    return "/" + route


async def connects(path: str, origin: bytes = SITE, session: str | None = None) -> bool:
    from config.asgi import application

    headers = [(b"origin", origin), (b"host", b"testserver")]
    if session is not None:
        headers.append((b"cookie", f"{settings.SESSION_COOKIE_NAME}={session}".encode()))
    communicator = WebsocketCommunicator(application, path, headers=headers)
    connected, _ = await communicator.connect()
    await communicator.disconnect()
    return connected


@pytest.mark.parametrize("route", sorted(r for r in SOCKETS if r != "ws/chat/widget/"))
async def test_signed_in_socket(route, world):
    path = socket_path(route, world)
    accepted = {role: await connects(path, session=world.sessions.get(role)) for role in PAGE_ROLES}
    assert accepted == SOCKETS[route], path


def _widget_tokens(w: World) -> dict[str, str]:
    from chat.identity import SOCKET_TOKEN_SALT, open_visitor, sign_socket_token
    from chat.widgets import create_widget

    charlie_widget = create_widget(w.charlie_org, w.charlie_bot, title="Charlie help")
    good = sign_socket_token(w.widget, w.visitor)
    forged = signing.dumps({"w": w.widget.public_key, "v": w.visitor.pk}, salt=SOCKET_TOKEN_SALT, key="not-ours",
                           compress=True)
    # Alice's widget key with a visitor of Charlie's widget: the pair must match.
    crossed = sign_socket_token(w.widget, open_visitor(charlie_widget))
    return {"good": good, "forged": forged, "crossed": crossed}


async def test_widget_socket(world):
    tokens = await sync_to_async(_widget_tokens)(world)
    path = "/ws/chat/widget/?token="
    accepted = {
        "visitor": await connects(path + tokens["good"]),
        "foreign_origin": await connects(path + tokens["good"], origin=b"https://evil.example"),
        "same_host_other_port": await connects(path + tokens["good"], origin=b"http://testserver:8001"),
        "no_token": await connects(path),
        "forged_token": await connects(path + tokens["forged"]),
        "another_widgets_visitor": await connects(path + tokens["crossed"]),
    }
    assert accepted == SOCKETS["ws/chat/widget/"]
