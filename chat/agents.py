"""What support agents do in a conversation: take over, reply, note, hand back, resolve."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from chat.conversations import append_message, knowledge_base_of, set_status
from chat.models import Author, Conversation, ConversationStatus, Message

MAX_AGENT_MESSAGE = 4000


def _name(agent) -> str:
    return agent.first_name or agent.username


def take_over(conversation: Conversation, agent) -> Conversation:
    if conversation.status == ConversationStatus.ASSIGNED and conversation.assignee_id == agent.pk:
        return conversation
    return set_status(conversation, ConversationStatus.ASSIGNED, assignee=agent,
                      system_text=f"{_name(agent)} from our team joined the conversation.")


def hand_back(conversation: Conversation, agent) -> Conversation:
    return set_status(conversation, ConversationStatus.BOT,
                      system_text="You are chatting with our assistant again. Ask for a person any time.")


def resolve(conversation: Conversation, agent=None) -> Conversation:
    if conversation.status == ConversationStatus.RESOLVED:
        return conversation
    return set_status(conversation, ConversationStatus.RESOLVED,
                      system_text="This conversation was marked as resolved. Was this helpful?")


def _clean(text: str) -> str:
    text = text.strip()
    if not text:
        raise ValidationError("Write something first.")
    if len(text) > MAX_AGENT_MESSAGE:
        raise ValidationError(f"Messages are limited to {MAX_AGENT_MESSAGE} characters.")
    return text


@transaction.atomic
def reply(conversation: Conversation, agent, text: str) -> Message:
    """An agent's reply reaches the customer at once; replying takes the conversation over from the bot."""
    text = _clean(text)
    if conversation.status != ConversationStatus.ASSIGNED or conversation.assignee_id != agent.pk:
        conversation = take_over(conversation, agent)
    message, _ = append_message(conversation, Author.AGENT, text, agent=agent)
    Conversation.objects.filter(pk=conversation.pk, first_agent_reply_at=None).update(
        first_agent_reply_at=timezone.now())
    return message


def note(conversation: Conversation, agent, text: str) -> Message:
    """A private note for the team: stored in the transcript, never sent to the customer."""
    message, _ = append_message(conversation, Author.AGENT, _clean(text), agent=agent, internal=True)
    return message


def mark_wrong(conversation: Conversation, agent, seq: int) -> Message:
    """An agent flags a bot reply as wrong: counted and listed on the review page (the reply stays in the
    transcript), and the entries it quoted no longer answer that question (knowledge/feedback.py)."""
    message = conversation.messages.filter(seq=seq, author=Author.BOT).first()
    if message is None:
        raise ValidationError("Only a bot reply can be marked wrong.")
    if message.marked_wrong_at is None:
        with transaction.atomic():
            Message.objects.filter(pk=message.pk).update(marked_wrong_at=timezone.now(), marked_wrong_by=agent)
            _remember_wrong_answer(conversation, message, agent)
        message.refresh_from_db()
    return message


def _remember_wrong_answer(conversation: Conversation, reply_: Message, agent) -> None:
    from knowledge.feedback import record_wrong_answer

    passages = (reply_.knowledge or {}).get("passages") or []
    knowledge_base = knowledge_base_of(conversation)
    if not passages or knowledge_base is None:
        return
    asked = list(conversation.messages.filter(seq__lt=reply_.seq, author=Author.CUSTOMER)
                 .order_by("-seq").values_list("text", flat=True)[:2])
    if asked:
        record_wrong_answer(knowledge_base, asked[::-1], passages, marked_by=agent)


def save_as_answer(conversation: Conversation, agent, seq: int):
    """An agent's reply becomes a knowledge entry: the customer's question before it, and the reply as
    its answer, in the knowledge base the conversation's bot answers from — the next customer gets it."""
    from knowledge.sources import save_answer

    reply_ = conversation.messages.filter(seq=seq, author=Author.AGENT, internal=False).first()
    if reply_ is None:
        raise ValidationError("Only a reply an agent sent to the customer can be saved as an answer.")
    question = conversation.messages.filter(seq__lt=seq, author=Author.CUSTOMER).order_by("-seq").first()
    if question is None:
        raise ValidationError("There is no customer question before that reply.")
    knowledge_base = knowledge_base_of(conversation)
    if knowledge_base is None:
        raise ValidationError("The bot of this conversation has no knowledge base to save the answer in.")
    return save_answer(knowledge_base, question.text, reply_.text, user=agent,
                       title=f"Saved from conversation #{conversation.pk}: {question.text[:120]}")
