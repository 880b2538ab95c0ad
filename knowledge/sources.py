"""Knowledge bases and their sources: the actions every view, command, admin action and the demo call.

A source's new version is stored with its passages in one transaction, or not at all (documents.py
refuses a bad file whole); an inference worker embeds it (knowledge/worker.py) and it goes live in
one row update. Broadcasts and tasks leave on commit.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import timedelta

from celery import current_app
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.text import slugify

from accounts.models import Organization
from core.broadcast import notify
from knowledge.chunking import passages as split_into_passages
from knowledge.documents import ParsedDocument, parse_text, parse_upload
from knowledge.models import (
    KnowledgeBase,
    KnowledgeSource,
    Passage,
    PassageVector,
    SourceKind,
    SourceVersion,
    VersionStatus,
)
from store.models import FoundationModel, Task, TunedModel

logger = logging.getLogger(__name__)

DEFAULT_EMBEDDING_MODEL = "gpt-store-retrieval"
EMBED_TASK = "knowledge.tasks.embed_version"


def knowledge_group(knowledge_base_id: int) -> str:
    return f"knowledge-{knowledge_base_id}"


def announce(knowledge_base_id: int) -> None:
    """Ring the knowledge base's pages (they refetch their partial)."""
    transaction.on_commit(lambda: notify(knowledge_group(knowledge_base_id),
                                         {"type": "knowledge.changed", "knowledge_base": knowledge_base_id}))


# --- knowledge bases --------------------------------------------------------------------------


def embedding_models(organization: Organization) -> list[FoundationModel | TunedModel]:
    """What may embed this organization's knowledge: catalog encoders and its tuned embedding models."""
    bases = list(FoundationModel.objects.filter(supports_embedding=True))
    tuned = list(TunedModel.objects.filter(organization=organization, task=Task.EMBEDDING).select_related("base"))
    return [*bases, *tuned]


def find_embedding_model(organization: Organization, reference: str) -> FoundationModel | TunedModel:
    for model in embedding_models(organization):
        names = {model.slug} | ({model.openai_id, model.short_id} if isinstance(model, TunedModel) else set())
        if reference in names:
            return model
    raise ValidationError({"embedding_model": f"No embedding model called {reference!r}: pick a catalog encoder "
                                              "(all-minilm-l6-v2) or one of your tuned embedding models."})


def _assign(knowledge_base: KnowledgeBase, model: FoundationModel | TunedModel, pending: bool = False) -> None:
    base, tuned = (None, model) if isinstance(model, TunedModel) else (model, None)
    if pending:
        knowledge_base.pending_base, knowledge_base.pending_tuned = base, tuned
    else:
        knowledge_base.embedding_base, knowledge_base.embedding_tuned = base, tuned


def create_knowledge_base(organization: Organization, name: str, description: str = "",
                          embedding_model: FoundationModel | TunedModel | None = None,
                          slug: str | None = None) -> KnowledgeBase:
    name = name.strip()
    if not name:
        raise ValidationError({"name": "Give the knowledge base a name."})
    slug = slugify(slug or name)[:60]
    if not slug:
        raise ValidationError({"name": "The name needs at least one letter or digit."})
    if KnowledgeBase.objects.filter(organization=organization, slug=slug).exists():
        raise ValidationError({"name": f"You already have a knowledge base called {slug!r}."})
    if embedding_model is None:
        embedding_model = FoundationModel.objects.filter(slug=DEFAULT_EMBEDDING_MODEL).first()
        if embedding_model is None:
            raise ValidationError("The catalog has no embedding model: run `manage.py sync_catalog`.")
    knowledge_base = KnowledgeBase(organization=organization, name=name[:120], slug=slug,
                                   description=description[:300])
    _assign(knowledge_base, embedding_model)
    knowledge_base.save()
    return knowledge_base


@transaction.atomic
def switch_embedding_model(knowledge_base: KnowledgeBase, model: FoundationModel | TunedModel) -> KnowledgeBase:
    """Embed every live passage by `model`, then move the knowledge base to it in one update (the
    old vectors answer questions meanwhile)."""
    knowledge_base = KnowledgeBase.objects.select_for_update().get(pk=knowledge_base.pk)
    if isinstance(model, TunedModel) and model.organization_id != knowledge_base.organization_id:
        raise ValidationError({"embedding_model": "That model does not exist."})
    if (knowledge_base.embedding_tuned or knowledge_base.embedding_base) == model:
        knowledge_base.pending_base = knowledge_base.pending_tuned = None
        knowledge_base.save(update_fields=["pending_base", "pending_tuned", "updated_at"])
        return knowledge_base
    _assign(knowledge_base, model, pending=True)
    knowledge_base.save(update_fields=["pending_base", "pending_tuned", "updated_at"])
    live = list(SourceVersion.objects.filter(live_for__knowledge_base=knowledge_base).values_list("pk", flat=True))
    for version_id in live:
        _queue_embedding(version_id)
    if not live:
        complete_switch(knowledge_base.pk)
    announce(knowledge_base.pk)
    return knowledge_base


def complete_switch(knowledge_base_id: int) -> bool:
    """Move to the pending embedding model once every live passage has a vector by it."""
    with transaction.atomic():
        knowledge_base = KnowledgeBase.objects.select_for_update().filter(pk=knowledge_base_id).first()
        if knowledge_base is None or knowledge_base.pending_key is None:
            return False
        pending = knowledge_base.pending_key
        missing = live_passages(knowledge_base).exclude(vectors__model_key=pending).exists()
        if missing:
            return False
        knowledge_base.embedding_base, knowledge_base.embedding_tuned = (knowledge_base.pending_base,
                                                                         knowledge_base.pending_tuned)
        knowledge_base.pending_base = knowledge_base.pending_tuned = None
        knowledge_base.revision += 1
        knowledge_base.save()
        announce(knowledge_base_id)
    logger.info("knowledge base %s now embeds with %s", knowledge_base_id, pending)
    return True


# --- sources and versions -----------------------------------------------------------------------


def add_file(knowledge_base: KnowledgeBase, data: bytes, filename: str, *, title: str = "", url: str = "",
             user=None) -> KnowledgeSource:
    """Validate the whole file, then store it as a new source (raises DocumentRejected, storing nothing)."""
    parsed = parse_upload(data, filename, settings.KNOWLEDGE_MAX_BYTES)
    return _create_source(knowledge_base, parsed, title or parsed.title, url, user, filename, data)


def add_text(knowledge_base: KnowledgeBase, title: str, text: str, *, url: str = "", user=None,
             kind: str = SourceKind.PASTED) -> KnowledgeSource:
    _check_pasted(text)
    parsed = parse_text(text, kind, title or "Pasted text")
    return _create_source(knowledge_base, parsed, title or parsed.title, url, user, "", text.encode())


def answer_title(question: str) -> str:
    """The title of a source written to answer `question` ("Save as answer", "Write its answer"): the
    question with its spacing tidied, cut to what a source's title holds. Also how the review page knows
    a question has been answered since."""
    return " ".join(question.split())[:KnowledgeSource._meta.get_field("title").max_length]


def save_answer(knowledge_base: KnowledgeBase, question: str, answer: str, *, title: str = "",
                user=None) -> KnowledgeSource:
    """An agent's reply kept as a question–answer pair, so the next customer who asks gets it."""
    question, answer = question.strip(), answer.strip()
    if not question or not answer:
        raise ValidationError("A saved answer needs the customer's question and the reply.")
    parsed = ParsedDocument(SourceKind.SAVED_ANSWER, question, f"Q: {question}\nA: {answer}")
    from knowledge.documents import Section

    parsed.sections = [Section([question], answer, question=question)]
    return _create_source(knowledge_base, parsed, title or answer_title(question), "", user, "", parsed.text.encode())


def revise_file(source: KnowledgeSource, data: bytes, filename: str, user=None) -> SourceVersion:
    parsed = parse_upload(data, filename, settings.KNOWLEDGE_MAX_BYTES)
    if parsed.kind != source.kind and not (source.kind == SourceKind.PASTED and parsed.kind == SourceKind.MARKDOWN):
        raise ValidationError(f"{source.title} is a {source.get_kind_display()} source; upload the same kind of "
                              f"file (this one is {SourceKind(parsed.kind).label}).")
    return _new_version(source, parsed, user, filename, data)


def revise_text(source: KnowledgeSource, text: str, user=None) -> SourceVersion:
    _check_pasted(text)
    kind = SourceKind.MARKDOWN if source.kind == SourceKind.PASTED else source.kind
    if source.kind == SourceKind.PDF:
        kind = SourceKind.TEXT  # an edited PDF's extracted text is plain text
    parsed = parse_text(text, kind if kind != SourceKind.SAVED_ANSWER else SourceKind.TEXT, source.title)
    if source.kind == SourceKind.SAVED_ANSWER:
        question = source.live_version.passages.values_list("question", flat=True).first() if source.live_version \
            else source.title
        from knowledge.documents import Section

        parsed.sections = [Section([question or source.title], text.strip(), question=question or source.title)]
    parsed.kind = source.kind
    return _new_version(source, parsed, user, "", text.encode())


def _check_pasted(text: str) -> None:
    if not text.strip():
        raise ValidationError({"text": "Paste some text."})
    if len(text.encode()) > settings.KNOWLEDGE_MAX_BYTES:
        raise ValidationError({"text": f"That is {len(text.encode()) / 1e6:.1f} MB of text; the limit is "
                                       f"{settings.KNOWLEDGE_MAX_BYTES / 1e6:g} MB (KNOWLEDGE_MAX_BYTES)."})


@transaction.atomic
def _create_source(knowledge_base: KnowledgeBase, parsed: ParsedDocument, title: str, url: str, user,
                   filename: str, data: bytes) -> KnowledgeSource:
    if url and not url.startswith(("http://", "https://")):
        raise ValidationError({"url": "The link must start with http:// or https://."})
    source = KnowledgeSource.objects.create(knowledge_base=knowledge_base, title=title.strip()[:200] or "Untitled",
                                            kind=parsed.kind, url=url, created_by=user)
    _new_version(source, parsed, user, filename, data)
    return source


@transaction.atomic
def _new_version(source: KnowledgeSource, parsed: ParsedDocument, user, filename: str,
                 data: bytes) -> SourceVersion:
    drafts = split_into_passages(parsed.sections)
    if not drafts:
        raise ValidationError("There is nothing to retrieve in it.")
    source = KnowledgeSource.objects.select_for_update().get(pk=source.pk)
    number = (source.versions.order_by("-number").values_list("number", flat=True).first() or 0) + 1
    version = SourceVersion.objects.create(
        source=source, number=number, original_filename=filename[:255], size_bytes=len(data),
        sha256=hashlib.sha256(data).hexdigest(), text=parsed.text, passage_count=len(drafts), created_by=user)
    Passage.objects.bulk_create([Passage(version=version, position=i, title=d.title, question=d.question, text=d.text)
                                 for i, d in enumerate(drafts)])
    source.save(update_fields=["updated_at"])
    _queue_embedding(version.pk)
    announce(source.knowledge_base_id)
    return version


def _queue_embedding(version_id: int) -> None:
    transaction.on_commit(lambda: send_embedding_task(version_id))


def send_embedding_task(version_id: int) -> bool:
    """Ask an inference worker to embed a version. If the broker cannot take it now, the version stays
    queued and the sweeper (requeue_stalled_versions, run by beat) sends it again: nothing is lost."""
    try:
        current_app.send_task(EMBED_TASK, args=[version_id], queue="inference")
    except Exception as error:  # the broker's client raises many kinds; the page must not fail for it
        logger.warning("could not queue the embedding of version %s (%s); the sweeper will retry", version_id, error)
        return False
    return True


def requeue_stalled_versions(older_than_seconds: float = 120) -> list[int]:
    """Versions waiting longer than `older_than_seconds` with no heartbeat for as long (a lost task, a
    worker that died while embedding) are queued again; embedding is idempotent (it only embeds what has
    no vector yet). A version its worker is still embedding keeps beating and is left alone."""
    cutoff = timezone.now() - timedelta(seconds=older_than_seconds)
    quiet = Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at=None)
    stalled = list(SourceVersion.objects.filter(quiet, status__in=(VersionStatus.QUEUED, VersionStatus.EMBEDDING),
                                                created_at__lt=cutoff).values_list("pk", "status"))
    for version_id, status in stalled:
        if status == VersionStatus.EMBEDDING:
            SourceVersion.objects.filter(pk=version_id, status=VersionStatus.EMBEDDING).update(
                status=VersionStatus.QUEUED)
        send_embedding_task(version_id)
    return [version_id for version_id, _ in stalled]


def retry_version(version: SourceVersion) -> SourceVersion:
    """Queue a failed (or stuck) version's embedding again."""
    if version.status not in (VersionStatus.FAILED, VersionStatus.QUEUED, VersionStatus.EMBEDDING):
        raise ValidationError(f"Version {version.number} is {version.status}; only a failed or pending version "
                              "can be embedded again.")
    SourceVersion.objects.filter(pk=version.pk).update(status=VersionStatus.QUEUED, error="")
    _queue_embedding(version.pk)
    announce(version.source.knowledge_base_id)
    return version


def claim_version(version_id: int) -> bool:
    """A worker takes a queued version (safe with any number of workers)."""
    return SourceVersion.objects.filter(pk=version_id, status=VersionStatus.QUEUED).update(
        status=VersionStatus.EMBEDDING, heartbeat_at=timezone.now()) == 1


def beat_version(version_id: int) -> None:
    """The worker embedding this version is alive (see requeue_stalled_versions)."""
    SourceVersion.objects.filter(pk=version_id).update(heartbeat_at=timezone.now())


def record_progress(version_id: int, embedded: int, knowledge_base_id: int) -> None:
    SourceVersion.objects.filter(pk=version_id).update(embedded_count=embedded, heartbeat_at=timezone.now())
    announce(knowledge_base_id)


def fail_version(version_id: int, error: str) -> None:
    version = SourceVersion.objects.select_related("source").get(pk=version_id)
    SourceVersion.objects.filter(pk=version_id).exclude(status=VersionStatus.LIVE).update(
        status=VersionStatus.FAILED, error=error[:2000])
    announce(version.source.knowledge_base_id)


@transaction.atomic
def go_live(version_id: int) -> bool:
    """Make an embedded version its source's live one, in one update: retrieval switches from the old
    passages to the new at a revision boundary, never seeing both or neither."""
    version = SourceVersion.objects.select_related("source").get(pk=version_id)
    # of=self: PostgreSQL cannot lock the nullable side of the outer join select_related adds.
    source = KnowledgeSource.objects.select_for_update(of=("self",)).select_related("live_version").get(
        pk=version.source_id)
    if version.status == VersionStatus.LIVE:
        return False
    previous = source.live_version
    if previous is not None and previous.number > version.number:
        # A newer version went live first (edits in quick succession): this one is history already.
        SourceVersion.objects.filter(pk=version.pk).update(status=VersionStatus.SUPERSEDED)
        PassageVector.objects.filter(passage__version=version).delete()
        return False
    if previous is not None:
        SourceVersion.objects.filter(pk=previous.pk).update(status=VersionStatus.SUPERSEDED)
        PassageVector.objects.filter(passage__version=previous).delete()  # the text stays as history
    SourceVersion.objects.filter(pk=version.pk).update(status=VersionStatus.LIVE, live_at=timezone.now(),
                                                       embedded_count=version.passage_count)
    source.live_version_id = version.pk
    source.save(update_fields=["live_version", "updated_at"])
    new_revision(source.knowledge_base_id)
    return True


@transaction.atomic
def delete_source(source: KnowledgeSource) -> None:
    knowledge_base_id = source.knowledge_base_id
    live = KnowledgeSource.objects.filter(pk=source.pk, live_version__isnull=False).exists()
    source.delete()
    if live:
        new_revision(knowledge_base_id)
    else:
        announce(knowledge_base_id)


def relinked(source: KnowledgeSource) -> None:
    """A source's link changed (admin): its passages cite it, and workers hold passages with the index."""
    new_revision(source.knowledge_base_id)


def new_revision(knowledge_base_id: int) -> None:
    """What retrieval hands out changed (live passages, or a link they cite): workers holding the old
    index and passages see a new KnowledgeBase.index_key and rebuild; the pages refetch."""
    KnowledgeBase.objects.filter(pk=knowledge_base_id).update(revision=F("revision") + 1)
    announce(knowledge_base_id)


def live_passages(knowledge_base: KnowledgeBase):
    return Passage.objects.filter(version__live_for__knowledge_base=knowledge_base)


def pending_versions(knowledge_base: KnowledgeBase):
    return SourceVersion.objects.filter(source__knowledge_base=knowledge_base,
                                        status__in=(VersionStatus.QUEUED, VersionStatus.EMBEDDING))
