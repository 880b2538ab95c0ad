"""Conversations and messages: the actions every consumer, view and command calls.

Sequence numbers come from an atomic counter on the conversation (a row lock on PostgreSQL, the
write lock of an IMMEDIATE transaction on SQLite), with a unique constraint and a retry as the
safety net, so concurrent writers never share or skip a number. Two counters: `seq` numbers every
message (the console's order, private notes included) and `public_seq` only what the customer sees,
so the widget's numbering has no gap where an agent wrote a note. Broadcasts go out on commit.
"""

from __future__ import annotations

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from chat.models import Author, Conversation, ConversationStatus, Message, Visitor
from core.broadcast import notify, notify_coalesced


def conversation_group(conversation_id: int) -> str:
    """Everyone in the conversation: the customer's widget and the agents who opened it."""
    return f"chat-conv-{conversation_id}"


def agents_group(conversation_id: int) -> str:
    """Agents only: private notes and sentiment never reach the customer's socket."""
    return f"chat-conv-{conversation_id}-agents"


def reply_group(conversation_id: int) -> str:
    """The bot's reply being written, in whichever process holds the turn: told to stop on a takeover."""
    return f"chat-conv-{conversation_id}-reply"


def visitor_group(visitor_id: int) -> str:
    """The visitor's sockets that have no conversation yet (other tabs learn when one starts)."""
    return f"chat-visitor-{visitor_id}"


def console_group(organization_id: int) -> str:
    return f"chat-console-{organization_id}"


def sources_of(message: Message) -> list[dict]:
    """The citations a customer sees under a bot reply: where it comes from, and a link if there is one."""
    return [{"title": passage.get("title", ""), "url": passage.get("url", "")}
            for passage in (message.knowledge or {}).get("passages", [])]


def related_of(message: Message) -> list[dict]:
    """The questions offered under a bot reply (knowledge.policy.related_entries), to ask with one tap."""
    return [{"question": entry.get("question", "")} for entry in (message.knowledge or {}).get("related", [])
            if entry.get("question")]


def message_payload(message: Message) -> dict:
    return {
        "seq": message.seq, "author": message.author, "text": message.text,
        "created_at": message.created_at.isoformat(), "internal": message.internal,
        "agent": (message.agent.get_full_name() or message.agent.username) if message.agent else None,
        "sentiment": ({"label": message.sentiment_label, "score": message.sentiment_score,
                       "value": message.sentiment_value} if message.sentiment_label else None),
        "sources": sources_of(message),
        "related": related_of(message),
        "knowledge": message.knowledge or None,
        "marked_wrong": message.marked_wrong_at is not None,
    }


def customer_payload(message: Message) -> dict:
    """What the widget sees: no sentiment, no internal fields, no confidence: only the sources. Its
    `seq` is the customer's own numbering (public_seq)."""
    payload = message_payload(message)
    for private in ("sentiment", "internal", "knowledge", "marked_wrong"):
        payload.pop(private)
    payload["seq"] = message.public_seq
    return payload


def _merge_console_rings(pending: dict, newer: dict) -> dict:
    return {**newer, "alert": pending["alert"] or newer["alert"]}  # an escalation alert is never lost


def announce_console(conversation: Conversation, alert: bool = False) -> None:
    """Ring the organization's console lists (they refetch; at most one ring per 0.2 s)."""
    org_id, conversation_id = conversation.organization_id, conversation.pk
    transaction.on_commit(lambda: notify_coalesced(console_group(org_id), {
        "type": "console.changed", "conversation": conversation_id, "alert": alert}, _merge_console_rings))


def current_conversation(visitor: Visitor, create: bool = False) -> Conversation | None:
    """The visitor's open conversation (or the last one, even resolved, so a reload shows it)."""
    conversation = visitor.conversations.order_by("-created_at", "-pk").first()
    if conversation is None and create:
        widget = visitor.widget
        conversation = Conversation.objects.create(organization_id=widget.organization_id, widget=widget,
                                                   deployment_id=widget.deployment_id, visitor=visitor)
    return conversation


def knowledge_base_of(conversation: Conversation):
    """The knowledge base the deployment answering the conversation answers from now, if any (one query
    at most; none when the caller selected `deployment__knowledge__knowledge_base`)."""
    deployment = conversation.deployment
    attached = getattr(deployment, "knowledge", None) if deployment is not None else None
    return attached.knowledge_base if attached is not None else None


def _take_seq(conversation_id: int, now, customer_text: str | None, public: bool) -> tuple[int, int | None]:
    """The conversation's next sequence number, and its next public one for a message the customer
    sees; also stamps its last-message fields (and, for a customer message, the unread count and
    preview: the list shows what the customer said last, which is what an agent triages on). One
    UPDATE ... RETURNING where the database has it."""
    sets = ["last_seq = last_seq + 1", "last_message_at = %s"]
    params: list = [connection.ops.adapt_datetimefield_value(now)]
    if public:
        sets.append("last_public_seq = last_public_seq + 1")
    if customer_text is not None:
        sets += ["unread_for_agents = unread_for_agents + 1", "last_message_preview = %s"]
        params.append(customer_text[:160])
    table = connection.ops.quote_name(Conversation._meta.db_table)
    update = f"UPDATE {table} SET {', '.join(sets)} WHERE id = %s"  # noqa: S608 (fixed names, values are params)
    with connection.cursor() as cursor:
        if connection.features.can_return_columns_from_insert:  # SQLite >= 3.35, PostgreSQL
            cursor.execute(update + " RETURNING last_seq, last_public_seq", [*params, conversation_id])
            row = cursor.fetchone()
        else:
            cursor.execute(update, [*params, conversation_id])
            row = Conversation.objects.filter(pk=conversation_id).values_list("last_seq", "last_public_seq").first()
    if row is None:
        raise Conversation.DoesNotExist(f"conversation {conversation_id} is gone")
    return row[0], (row[1] if public else None)


def append_message(conversation: Conversation, author: str, text: str, *, agent=None, internal: bool = False,
                   client_id: str = "", knowledge: dict | None = None) -> tuple[Message, bool]:
    """Store a message with the next sequence number; returns (message, created).

    A message resent with the same client_id (the customer's reconnecting widget) is not stored
    twice: the unique constraint refuses it, the transaction (and its sequence number) rolls back,
    and the stored one is returned.
    """
    for _attempt in range(5):
        try:
            with transaction.atomic():
                now = timezone.now()
                seq, public_seq = _take_seq(conversation.pk, now, text if author == Author.CUSTOMER else None,
                                            public=not internal)
                message = Message.objects.create(conversation=conversation, seq=seq, public_seq=public_seq,
                                                 author=author, text=text,
                                                 agent=agent, internal=internal, client_id=client_id, created_at=now,
                                                 knowledge=knowledge or {})
                _broadcast_message(conversation, message)
                return message, True
        except IntegrityError:
            if client_id:
                existing = Message.objects.filter(conversation=conversation, client_id=client_id).first()
                if existing is not None:
                    return existing, False
            continue  # another writer took this number between our update and insert: take the next
    raise RuntimeError(f"could not append a message to conversation {conversation.pk}")


def _broadcast_message(conversation: Conversation, message: Message) -> None:
    conversation_id = conversation.pk
    if message.internal:
        payload = {"type": "chat.note", "message": message_payload(message)}
        transaction.on_commit(lambda: notify(agents_group(conversation_id), payload))
    else:
        everyone = {"type": "chat.message", "message": customer_payload(message),
                    "agent_view": message_payload(message)}
        transaction.on_commit(lambda: notify(conversation_group(conversation_id), everyone))
    announce_console(conversation)


def messages_after(conversation: Conversation, seq: int, include_internal: bool = False) -> list[Message]:
    """After `seq` in the console's numbering (include_internal) or in the customer's (public_seq)."""
    messages = conversation.messages.select_related("agent")
    if include_internal:
        return list(messages.filter(seq__gt=seq))
    return list(messages.filter(public_seq__gt=seq).order_by("public_seq"))


def set_status(conversation: Conversation, status: str, *, assignee=None, reason: str = "",
               system_text: str = "") -> Conversation:
    """Change the status (and tell the customer in a system message, when there is one)."""
    now = timezone.now()
    with transaction.atomic():
        updates: dict = {"status": status}
        if status == ConversationStatus.NEEDS_HUMAN:
            updates.update(escalated_at=now, escalation_reason=reason[:200])
        if status == ConversationStatus.ASSIGNED:
            updates["assignee"] = assignee
        if status == ConversationStatus.BOT:
            updates.update(assignee=None, negative_streak=0)
        if status == ConversationStatus.RESOLVED:
            updates.update(resolved_at=now, resolved_by_human=conversation.escalated_at is not None
                           or conversation.assignee_id is not None)
        Conversation.objects.filter(pk=conversation.pk).update(**updates)
        conversation.refresh_from_db()
        if system_text:
            append_message(conversation, Author.SYSTEM, system_text)
        payload = {"type": "chat.status", "status": status,
                   "assignee": (assignee.get_full_name() or assignee.username) if assignee else None}
        conversation_id = conversation.pk
        transaction.on_commit(lambda: notify(conversation_group(conversation_id), payload))
        if status != ConversationStatus.BOT:  # a person's turn: the bot stops mid-sentence, wherever it runs
            transaction.on_commit(lambda: notify(reply_group(conversation_id), {"type": "chat.stop_reply"}))
        announce_console(conversation, alert=status == ConversationStatus.NEEDS_HUMAN)
    return conversation


def mark_read(conversation_id: int) -> None:
    Conversation.objects.filter(pk=conversation_id).update(unread_for_agents=0)
