"""WebSockets of the chat: the customer's widget and the agents' console (protocol: docs/chat-protocol.md)."""

from __future__ import annotations

import logging
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from chat import assistant, pipeline, presence
from chat.conversations import (
    agents_group,
    append_message,
    console_group,
    conversation_group,
    current_conversation,
    customer_payload,
    mark_read,
    messages_after,
    visitor_group,
)
from chat.identity import read_socket_token
from chat.models import Author, Conversation, ConversationStatus, Message, Visitor
from core import client_address, ratelimit
from core.bounds import SEQUENCE
from core.broadcast import notify
from core.consumers import JsonFrameConsumer
from core.db_thread import DatabaseThreads, writer_threads

logger = logging.getLogger(__name__)

MAX_MESSAGE_CHARS = 2000
REFUSED = 4403

# A customer's socket never waits behind the rest of this process's database work. Channels runs it
# all on one shared thread: /v1 and page views, the pipeline's turn claims, labels and decisions, the
# bot's replies. Queued there, a message's store (all its ack waits for) took seconds under load, and a
# socket's opening took longer than Daphne waits for it (5 s) while /v1 requests queued (bench/load.py).
# The widget's own reads and writes get threads of their own, which keep their connections
# (core/db_thread.py). Four: replies of a continuous batch end together and their customers write again
# together; with one thread that burst queued (store-queue p99 ~500 ms, ack p99 0.7 s, 50 active
# customers on 2 web processes), with four the queue p99 was ~120 ms and the ack p99 0.36-0.42 s.
# One on SQLite, which admits one writer at a time.
WIDGET_DB = DatabaseThreads("chat-widget", writer_threads(4))


def _header(scope, name: bytes) -> str:
    return next((value.decode("latin-1") for key, value in scope.get("headers", []) if key == name), "")


def same_origin(scope) -> bool:
    """The widget's socket must come from our own iframe page: Origin == this server's origin.

    (AllowedHostsOriginValidator only checks host names, so a page on localhost:8001 would pass it.)
    """
    origin, host = _header(scope, b"origin"), _header(scope, b"host")
    scheme = "https" if scope.get("scheme") in ("wss", "https") else "http"
    return bool(origin and host) and origin.rstrip("/") == f"{scheme}://{host}"


def assignee_name(conversation: Conversation | None) -> str | None:
    assignee = conversation.assignee if conversation is not None else None
    if assignee is None:
        return None
    return assignee.first_name or assignee.username


class WidgetConsumer(JsonFrameConsumer):
    """One customer's chat: send, acknowledge, stream the bot's reply, replay after reconnects."""

    visitor: Visitor
    conversation_id: int | None = None
    conversation: Conversation | None = None  # its id and organization never change; its status is read fresh
    waiting_for_conversation = False
    sent_seq = 0  # the highest sequence number this socket has carried: a catch-up replays after it

    async def connect(self) -> None:
        token = parse_qs(self.scope.get("query_string", b"").decode()).get("token", [""])[0]
        claims = read_socket_token(token) if same_origin(self.scope) else None
        opened = await WIDGET_DB.run(self._open, claims) if claims else None
        if opened is None:
            logger.info("refused a widget socket (origin %r)", _header(self.scope, b"origin"))
            await self.close(code=REFUSED)
            return
        self.visitor, conversation, assignee = opened
        self.conversation = conversation
        self.sent_seq = conversation.last_public_seq if conversation is not None else 0
        await self.accept()
        if conversation is not None:
            await self._join(conversation.pk)
        else:  # lazy: nothing is created until the first message, maybe from another tab of this visitor
            self.waiting_for_conversation = True
            await self.channel_layer.group_add(visitor_group(self.visitor.pk), self.channel_name)
        await self.send_json({"type": "hello", "conversation": self.conversation_id,
                              "status": conversation.status if conversation else ConversationStatus.BOT,
                              "assignee": assignee,
                              "last_seq": conversation.last_public_seq if conversation else 0})

    @staticmethod
    def _open(claims) -> tuple[Visitor, Conversation | None, str | None] | None:
        """The token's visitor (None if it is gone or the widget's key changed), their conversation and its
        assignee's name: all the socket needs to say hello, in one call."""
        visitor = Visitor.objects.select_related("widget").filter(pk=claims.visitor_id,
                                                                  widget__public_key=claims.widget_key).first()
        if visitor is None:
            return None
        conversation = current_conversation(visitor)
        return visitor, conversation, assignee_name(conversation)

    async def _join(self, conversation_id: int) -> None:
        self.conversation_id = conversation_id
        await self.channel_layer.group_add(conversation_group(conversation_id), self.channel_name)
        await self._stop_waiting()

    async def _stop_waiting(self) -> None:
        if self.waiting_for_conversation:
            self.waiting_for_conversation = False
            await self.channel_layer.group_discard(visitor_group(self.visitor.pk), self.channel_name)

    async def disconnect(self, code: int) -> None:
        if self.conversation_id is not None:
            await self.channel_layer.group_discard(conversation_group(self.conversation_id), self.channel_name)
        await self._stop_waiting()

    async def receive_json(self, content, **kwargs) -> None:
        """`content` is a dict with a string "type" (JsonFrameConsumer.receive checked)."""
        handler = {"resume": self._resume, "message": self._message, "typing": self._typing,
                   "csat": self._csat, "email": self._email, "ping": self._ping}.get(content["type"])
        if handler is None:
            await self.unknown_frame(content["type"])
            return
        await handler(content)

    async def _ping(self, content: dict) -> None:
        await self.send_json({"type": "pong"})

    async def _resume(self, content: dict) -> None:
        """Replay everything after the client's last sequence number (it drops any it already has)."""
        last_seq = content.get("last_seq", 0)
        if not SEQUENCE.contains(last_seq) or isinstance(last_seq, float) and not last_seq.is_integer():
            await self.send_error("bad_frame", SEQUENCE.message())
            return
        state = await WIDGET_DB.run(self._replay, int(last_seq))
        for message in state["messages"]:
            await self.send_json({"type": "message", "message": message})
        self.sent_seq = max(self.sent_seq, state["last_seq"])
        await self.send_json({"type": "synced", "last_seq": state["last_seq"], "status": state["status"],
                              "assignee": state["assignee"], "ask_email": state["ask_email"], "csat": state["csat"]})

    def _replay(self, last_seq: int) -> dict:
        conversation = current_conversation(self.visitor)
        if conversation is None:
            return {"messages": [], "last_seq": 0, "status": ConversationStatus.BOT, "assignee": None,
                    "ask_email": False, "csat": None}
        messages = [customer_payload(m) for m in messages_after(conversation, last_seq)]
        # A message stored between reading the conversation and its messages is in the replay: `synced` must
        # cover it, or the client would ask for it again.
        replayed_to = max([conversation.last_public_seq, *(m["seq"] for m in messages)])
        return {"messages": messages, "last_seq": replayed_to, "status": conversation.status,
                "assignee": assignee_name(conversation),
                "ask_email": conversation.status == ConversationStatus.NEEDS_HUMAN and not conversation.contact_email
                and conversation.assignee_id is None, "csat": conversation.csat}

    async def _message(self, content: dict) -> None:
        text, client_id = content.get("text", ""), content.get("client_id", "")
        if not isinstance(client_id, str):
            await self.send_error("bad_frame", "client_id must be a string.")
            return
        client_id = client_id[:64]
        if not isinstance(text, str):  # str() of a list or number is not what the customer typed
            await self.send_error("bad_frame", "text must be a string.", client_id=client_id)
            return
        text = text.strip()
        if not text:
            await self.send_json({"type": "error", "code": "empty", "client_id": client_id,
                                  "message": "Type a message first."})
            return
        if len(text) > MAX_MESSAGE_CHARS:
            await self.send_json({"type": "error", "code": "too_long", "client_id": client_id,
                                  "message": f"Messages are limited to {MAX_MESSAGE_CHARS} characters "
                                             f"(this one has {len(text)})."})
            return
        # The rate limit's round trip and the store in one trip to the widget's thread: each return to the
        # event loop in between waited up to ~100 ms for it under load (bench/load.py).
        retry_after, stored = await WIDGET_DB.run(self._take_and_store, text, client_id)
        if stored is None:
            await self._refuse_rate_limited(retry_after, client_id=client_id)
            return
        message, arrived = stored
        if self.conversation_id != message.conversation_id:
            await self._join(message.conversation_id)
        await self.send_json({"type": "ack", "client_id": client_id, "seq": message.public_seq})
        self.sent_seq = max(self.sent_seq, message.public_seq or 0)
        if arrived is not None:
            pipeline.start(arrived)  # not awaited: the socket keeps serving typing and replay frames

    async def _within_rate_limit(self, **extra) -> bool:
        """Takes one from the visitor's and the address's buckets; answers `rate_limited` when either is empty.

        Every frame that writes to the database (a message, an email address) draws on the same buckets.
        """
        allowed, _, retry_after = await ratelimit.take_all(self._buckets())
        if not allowed:
            await self._refuse_rate_limited(retry_after, **extra)
        return allowed

    def _buckets(self) -> list[tuple[str, int]]:
        return [(f"chat:visitor:{self.visitor.token}", settings.CHAT_VISITOR_MESSAGES_PER_MINUTE),
                (f"chat:ip:{client_address.for_scope(self.scope)}", settings.CHAT_IP_MESSAGES_PER_MINUTE)]

    async def _refuse_rate_limited(self, retry_after: int, **extra) -> None:
        await self.send_error("rate_limited", f"You are sending messages too fast. Try again in {retry_after} s.",
                              retry_after=retry_after, **extra)

    def _take_and_store(self, text: str, client_id: str
                        ) -> tuple[int, tuple[Message, pipeline.Incoming | None] | None]:
        """(0, what _store returns), or (seconds to wait, None) when a rate limit refused the message."""
        allowed, _, retry_after = ratelimit.take_all_now(self._buckets())
        return (0, self._store(text, client_id)) if allowed else (retry_after, None)

    def _store(self, text: str, client_id: str) -> tuple[Message, pipeline.Incoming | None]:
        """The stored message, and what the pipeline needs unless it was a resend (stored before).

        Runs on STORE_THREAD: it touches nothing but this socket's own state, which waits for it."""
        conversation = self.conversation or current_conversation(self.visitor, create=True)
        assert conversation is not None
        started_here = self.conversation is None
        try:
            message, created = append_message(conversation, Author.CUSTOMER, text, client_id=client_id)
        except Conversation.DoesNotExist:  # deleted meanwhile (Django admin, an erasure request): a new one
            conversation = current_conversation(self.visitor, create=True)
            assert conversation is not None
            message, created = append_message(conversation, Author.CUSTOMER, text, client_id=client_id)
        self.conversation = conversation  # a visitor keeps their conversation: no lookup per message
        if started_here:  # the visitor's other tabs, open since before it existed, join it (and replay)
            notify(visitor_group(self.visitor.pk), {"type": "chat.conversation_started",
                                                    "conversation": conversation.pk})
        return message, pipeline.incoming(message, conversation.widget_id) if created else None

    async def _typing(self, content: dict) -> None:
        if not isinstance(content.get("typing", False), bool):
            await self.send_error("bad_frame", "typing must be true or false.")
            return
        if self.conversation_id is not None:
            await self.channel_layer.group_send(conversation_group(self.conversation_id), {
                "type": "chat.typing", "who": "customer", "typing": content.get("typing", False), "name": ""})

    async def _csat(self, content: dict) -> None:
        value = content.get("value")
        if type(value) is not int or value not in (1, -1) or self.conversation_id is None:  # True == 1
            await self.send_json({"type": "error", "code": "bad_frame", "message": "csat value must be 1 or -1."})
            return
        updated = await database_sync_to_async(Conversation.objects.filter(
            pk=self.conversation_id, status=ConversationStatus.RESOLVED).update)(csat=value)
        if updated:
            await self.send_json({"type": "csat_saved", "value": value})
        else:
            await self.send_json({"type": "error", "code": "not_resolved",
                                  "message": "You can rate the conversation once it is resolved."})

    async def _email(self, content: dict) -> None:
        email = content.get("email", "")
        email = email.strip()[:254] if isinstance(email, str) else ""
        try:
            validate_email(email)
        except ValidationError:
            await self.send_error("bad_email", "That email address looks wrong.")
            return
        if self.conversation_id is None:
            await self.send_error("no_conversation", "Write your question first, then leave your email address.")
            return
        if not await self._within_rate_limit():
            return
        await database_sync_to_async(self._save_email)(self.conversation_id, email)
        await self.send_json({"type": "email_saved", "email": email})

    def _save_email(self, conversation_id: int, email: str) -> None:
        conversation = Conversation.objects.get(pk=conversation_id)
        Conversation.objects.filter(pk=conversation.pk).update(contact_email=email)
        Visitor.objects.filter(pk=self.visitor.pk, email="").update(email=email)
        append_message(conversation, Author.SYSTEM, f"Thanks! We will reply to {email} as soon as we can.")

    # --- group events -> this customer's socket ---
    async def chat_conversation_started(self, event: dict) -> None:
        """Another tab of this visitor started the conversation: join it and catch up from the start."""
        if self.conversation_id is None:
            await self._join(event["conversation"])
            await self._resume({"last_seq": 0})

    async def chat_message(self, event: dict) -> None:
        self.sent_seq = max(self.sent_seq, event["message"].get("seq", 0))
        await self.send_json({"type": "message", "message": event["message"]})

    async def layer_reconnected(self, event: dict) -> None:
        """The channel layer restored this socket's groups after losing them (a Redis restart): send what
        went by meanwhile, as a resume would. A conversation started meanwhile (in another tab) is joined."""
        if self.conversation_id is None:
            conversation = await database_sync_to_async(current_conversation)(self.visitor)
            if conversation is None:
                return
            self.conversation = conversation
            await self._join(conversation.pk)
        await self._resume({"last_seq": self.sent_seq})

    async def chat_token(self, event: dict) -> None:
        await self.send_json({"type": "token", "text": event["text"]})

    async def chat_typing(self, event: dict) -> None:
        if event["who"] != "customer":
            await self.send_json({"type": "typing", "who": event["who"], "name": event.get("name", ""),
                                  "typing": event["typing"]})

    async def chat_status(self, event: dict) -> None:
        if event["status"] != ConversationStatus.BOT and self.conversation_id is not None:
            assistant.stop_reply(self.conversation_id)  # the bot stops mid-sentence when a person takes over
        await self.send_json({"type": "status", "status": event["status"], "assignee": event.get("assignee")})

    async def chat_ask_email(self, event: dict) -> None:
        await self.send_json({"type": "ask_email"})


class ConsoleConsumer(JsonFrameConsumer):
    """An agent's console. On the list page it only rings when a conversation changes; on a
    conversation page it also relays that conversation's messages, tokens, typing, notes and sentiment."""

    organization_id: int | None = None
    conversation_id: int | None = None
    groups_joined: list[str]

    async def connect(self) -> None:
        user = self.scope.get("user")
        self.groups_joined = []
        kwargs = self.scope["url_route"]["kwargs"]
        allowed = await self._authorize(user, kwargs.get("conversation_id")) if user and user.is_authenticated \
            else None
        if allowed is None:
            await self.close(code=REFUSED)
            return
        self.organization_id, self.conversation_id = allowed
        self.user = user
        groups = [console_group(self.organization_id)]
        if self.conversation_id is not None:
            groups += [conversation_group(self.conversation_id), agents_group(self.conversation_id)]
        for group in groups:
            await self.channel_layer.group_add(group, self.channel_name)
            self.groups_joined.append(group)
        await self.accept()
        await presence.check_in(self.organization_id, self.channel_name)

    @database_sync_to_async
    def _authorize(self, user, conversation_id) -> tuple[int, int | None] | None:
        from accounts.models import Membership

        session = self.scope.get("session")
        wanted = session.get("active_organization_id") if session is not None else None
        memberships = Membership.objects.filter(user=user)
        membership = memberships.filter(organization_id=wanted).first() if wanted else None
        membership = membership or memberships.order_by("created_at", "pk").first()
        if membership is None:
            return None
        if conversation_id is None:
            return membership.organization_id, None
        conversation = Conversation.objects.filter(pk=conversation_id).values_list("organization_id", flat=True).first()
        if conversation is None or not memberships.filter(organization_id=conversation).exists():
            return None
        return conversation, int(conversation_id)

    async def disconnect(self, code: int) -> None:
        for group in getattr(self, "groups_joined", []):
            await self.channel_layer.group_discard(group, self.channel_name)
        if self.organization_id is not None:
            await presence.check_out(self.organization_id, self.channel_name)

    async def receive_json(self, content, **kwargs) -> None:
        """`content` is a dict with a string "type" (JsonFrameConsumer.receive checked)."""
        kind, conversation_id = content["type"], self.conversation_id
        if kind == "ping":
            await presence.check_in(self.organization_id, self.channel_name)  # type: ignore[arg-type]
            await self.send_json({"type": "pong"})
        elif kind not in ("typing", "read"):
            await self.unknown_frame(kind)
        elif conversation_id is None:
            await self.send_error("bad_frame", f"{kind} frames belong to a conversation's socket.")
        elif kind == "read":
            await database_sync_to_async(mark_read)(conversation_id)
        elif not isinstance(content.get("typing", False), bool):
            await self.send_error("bad_frame", "typing must be true or false.")
        else:
            name = self.user.get_full_name() or self.user.username
            await self.channel_layer.group_send(conversation_group(conversation_id), {
                "type": "chat.typing", "who": "agent", "typing": content.get("typing", False), "name": name})

    async def console_changed(self, event: dict) -> None:
        await self.send_json({"type": "changed", "conversation": event["conversation"], "alert": event["alert"]})

    async def chat_message(self, event: dict) -> None:
        await self.send_json({"type": "message", "message": event["agent_view"]})

    async def chat_note(self, event: dict) -> None:
        await self.send_json({"type": "message", "message": event["message"]})

    async def chat_token(self, event: dict) -> None:
        await self.send_json({"type": "token", "text": event["text"]})

    async def chat_typing(self, event: dict) -> None:
        if event["who"] != "agent":
            await self.send_json({"type": "typing", "who": event["who"], "typing": event["typing"]})

    async def chat_status(self, event: dict) -> None:
        if event["status"] != ConversationStatus.BOT and self.conversation_id is not None:
            assistant.stop_reply(self.conversation_id)  # the bot stops mid-sentence when a person takes over
        await self.send_json({"type": "status", "status": event["status"], "assignee": event.get("assignee")})

    async def chat_sentiment(self, event: dict) -> None:
        await self.send_json({k: v for k, v in event.items() if k != "type"} | {"type": "sentiment"})

    async def chat_ask_email(self, event: dict) -> None:
        return None

    async def layer_reconnected(self, event: dict) -> None:
        """The channel layer restored this socket's groups after losing them (a Redis restart). The page
        refreshes on these frames and so shows whatever went by meanwhile."""
        if self.conversation_id is None:
            await self.send_json({"type": "changed", "conversation": None, "alert": False})
            return
        status, assignee = await database_sync_to_async(self._status)(self.conversation_id)
        await self.send_json({"type": "status", "status": status, "assignee": assignee})

    @staticmethod
    def _status(conversation_id: int) -> tuple[str, str | None]:
        conversation = Conversation.objects.select_related("assignee").get(pk=conversation_id)
        return conversation.status, assignee_name(conversation)
