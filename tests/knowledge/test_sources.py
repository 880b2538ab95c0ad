"""Sources and versions: stored whole or not at all, embedded by a worker, live in one step."""

import pytest
from django.core.exceptions import ValidationError

from knowledge import sources
from knowledge.documents import DocumentRejected
from knowledge.models import KnowledgeSource, Passage, PassageVector, SourceVersion, VersionStatus
from tests.knowledge.conftest import SMALL_FAQ, embed_live


def vectors_of(version) -> int:
    from knowledge.chunking import vector_texts

    return sum(len(vector_texts(p.title, p.text, p.question)) for p in version.passages.all())


def test_it_stores_a_valid_file_with_its_passages_queued_for_embedding(knowledge_base, alice):
    source = sources.add_file(knowledge_base, SMALL_FAQ.encode(), "faq.md", url="https://alice.example/help",
                              user=alice.user)
    [version] = source.versions.all()
    assert version.status == VersionStatus.QUEUED and version.passage_count == 3
    assert [p.title for p in version.passages.all()] == [
        "Shipping › How much does shipping cost?", "Shipping › How long does delivery take?",
        "Returns › What is your return policy?"]
    assert source.title == "Alice Shoes help" and source.live_version is None
    assert sources.live_passages(knowledge_base).count() == 0  # nothing answers before it is embedded


@pytest.mark.parametrize(("data", "name"), [(b"", "faq.md"), (b"\xff\xfe bad", "faq.md"),
                                             (b"q,a\nx,y\n", "pairs.csv")])
def test_a_bad_file_stores_nothing(knowledge_base, data, name):
    with pytest.raises(DocumentRejected):
        sources.add_file(knowledge_base, data, name)
    assert not KnowledgeSource.objects.exists() and not SourceVersion.objects.exists()
    assert not Passage.objects.exists()


def test_it_refuses_files_over_the_limit(knowledge_base, settings):
    settings.KNOWLEDGE_MAX_BYTES = 100
    with pytest.raises(DocumentRejected) as error:
        sources.add_file(knowledge_base, SMALL_FAQ.encode(), "faq.md")
    assert "limit" in str(error.value)
    assert not KnowledgeSource.objects.exists()


def test_it_refuses_a_non_http_link(knowledge_base):
    with pytest.raises(ValidationError):
        sources.add_text(knowledge_base, "FAQ", SMALL_FAQ, url="javascript:alert(1)")
    assert not KnowledgeSource.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_an_embedded_version_goes_live_and_a_new_one_replaces_it_atomically(tiny_knowledge_base, encoder_engine):
    source = sources.add_text(tiny_knowledge_base, "FAQ", SMALL_FAQ)
    embed_live(tiny_knowledge_base, encoder_engine)
    source.refresh_from_db()
    tiny_knowledge_base.refresh_from_db()
    first = source.live_version
    assert first.status == VersionStatus.LIVE and first.embedded_count == 3
    assert tiny_knowledge_base.revision == 1
    # Each passage is embedded as itself and as each of its sentences (knowledge.chunking.vector_texts).
    assert PassageVector.objects.filter(passage__version=first, model_key="encoder:tiny-encoder").count() == \
        vectors_of(first) == 9
    assert set(PassageVector.objects.values_list("part", flat=True)) == {0, 1, 2}

    second = sources.revise_text(source, SMALL_FAQ.replace("$12.95", "$14.95"))
    # Until the worker is done, the first version keeps answering.
    assert set(sources.live_passages(tiny_knowledge_base)) == set(first.passages.all())
    embed_live(tiny_knowledge_base, encoder_engine)
    source.refresh_from_db()
    tiny_knowledge_base.refresh_from_db()
    assert source.live_version == second and tiny_knowledge_base.revision == 2
    assert SourceVersion.objects.get(pk=first.pk).status == VersionStatus.SUPERSEDED
    assert "$14.95" in " ".join(p.text for p in sources.live_passages(tiny_knowledge_base))
    assert not PassageVector.objects.filter(passage__version=first).exists()  # the old vectors are dropped


@pytest.mark.django_db(transaction=True)
def test_an_older_version_finishing_late_never_replaces_a_newer_live_one(tiny_knowledge_base, encoder_engine):
    from knowledge import worker

    source = sources.add_text(tiny_knowledge_base, "FAQ", SMALL_FAQ)
    older = source.versions.get()
    newer = sources.revise_text(source, SMALL_FAQ.replace("30 days", "45 days"))
    assert worker.embed_version(newer.pk, encoder_engine) == "live"
    worker.embed_version(older.pk, encoder_engine)
    source.refresh_from_db()
    assert source.live_version == newer
    assert SourceVersion.objects.get(pk=older.pk).status == VersionStatus.SUPERSEDED


@pytest.mark.django_db(transaction=True)
def test_embedding_a_version_twice_does_nothing_the_second_time(tiny_knowledge_base, encoder_engine):
    from knowledge import worker

    source = sources.add_text(tiny_knowledge_base, "FAQ", SMALL_FAQ)
    version = source.versions.get()
    assert worker.embed_version(version.pk, encoder_engine) == "live"
    assert worker.embed_version(version.pk, encoder_engine) == "nothing to do"
    assert PassageVector.objects.count() == vectors_of(version)


@pytest.mark.django_db(transaction=True)
def test_a_failed_embedding_is_recorded_and_can_be_queued_again(tiny_knowledge_base, encoder_engine):
    from knowledge import worker

    # The tiny encoder reads 128 positions: a 120-word window with its title does not fit.
    source = sources.add_text(tiny_knowledge_base, "FAQ", "# Care\n\n" + "xyzzyq " * 400)
    version = source.versions.get()
    assert worker.embed_version(version.pk, encoder_engine) == "failed"
    version.refresh_from_db()
    assert version.status == VersionStatus.FAILED and "at most 128" in version.error
    assert sources.live_passages(tiny_knowledge_base).count() == 0
    sources.retry_version(version)
    version.refresh_from_db()
    assert version.status == VersionStatus.QUEUED and version.error == ""


@pytest.mark.django_db(transaction=True)
def test_deleting_a_source_takes_its_passages_out_at_once(tiny_knowledge_base, encoder_engine):
    source = sources.add_text(tiny_knowledge_base, "FAQ", SMALL_FAQ)
    embed_live(tiny_knowledge_base, encoder_engine)
    tiny_knowledge_base.refresh_from_db()
    revision = tiny_knowledge_base.revision
    sources.delete_source(source)
    tiny_knowledge_base.refresh_from_db()
    assert tiny_knowledge_base.revision == revision + 1
    assert not sources.live_passages(tiny_knowledge_base).exists()


@pytest.mark.django_db(transaction=True)
def test_switching_the_embedding_model_embeds_every_passage_first_then_moves_at_once(
        tiny_knowledge_base, encoder_engine, catalog):
    from knowledge import worker

    sources.add_text(tiny_knowledge_base, "FAQ", SMALL_FAQ)
    embed_live(tiny_knowledge_base, encoder_engine)
    tiny_knowledge_base.refresh_from_db()
    sources.switch_embedding_model(tiny_knowledge_base, catalog["all-minilm-l6-v2"])
    tiny_knowledge_base.refresh_from_db()
    assert tiny_knowledge_base.embedding_key == "encoder:tiny-encoder"  # still the old one
    assert tiny_knowledge_base.pending_key == "encoder:all-minilm-l6-v2"
    [live] = SourceVersion.objects.filter(status=VersionStatus.LIVE)
    assert worker.embed_version(live.pk, encoder_engine) == "live"
    tiny_knowledge_base.refresh_from_db()
    assert tiny_knowledge_base.embedding_key == "encoder:all-minilm-l6-v2" and tiny_knowledge_base.pending_key is None
    assert PassageVector.objects.filter(model_key="encoder:all-minilm-l6-v2").count() == vectors_of(live)


def test_a_version_whose_task_was_lost_is_queued_again_by_the_sweeper(knowledge_base, monkeypatch):
    from django.utils import timezone

    sent = []
    monkeypatch.setattr("knowledge.sources.current_app.send_task",
                        lambda name, args, queue: sent.append((name, args, queue)))
    source = sources.add_text(knowledge_base, "FAQ", SMALL_FAQ)
    version = source.versions.get()
    assert sources.requeue_stalled_versions() == []  # too fresh to be stalled
    SourceVersion.objects.filter(pk=version.pk).update(status=VersionStatus.EMBEDDING,
                                                       created_at=timezone.now() - timezone.timedelta(minutes=5))
    assert sources.requeue_stalled_versions() == [version.pk]
    version.refresh_from_db()
    assert version.status == VersionStatus.QUEUED
    assert sent[-1] == ("knowledge.tasks.embed_version", [version.pk], "inference")


def test_a_large_version_its_worker_is_still_embedding_is_not_queued_twice(knowledge_base, monkeypatch):
    from django.utils import timezone

    sent = []
    monkeypatch.setattr("knowledge.sources.current_app.send_task",
                        lambda name, args, queue: sent.append((name, args, queue)))
    version = sources.add_text(knowledge_base, "FAQ", SMALL_FAQ).versions.get()
    long_ago = timezone.now() - timezone.timedelta(minutes=15)
    SourceVersion.objects.filter(pk=version.pk).update(created_at=long_ago)
    assert sources.claim_version(version.pk)  # a worker takes it and starts beating
    sources.beat_version(version.pk)
    sent.clear()
    assert sources.requeue_stalled_versions() == []
    assert sent == []
    SourceVersion.objects.filter(pk=version.pk).update(heartbeat_at=long_ago)  # the worker died
    assert sources.requeue_stalled_versions() == [version.pk]
    assert sent == [("knowledge.tasks.embed_version", [version.pk], "inference")]


def test_a_broker_that_cannot_take_the_task_loses_nothing(knowledge_base, monkeypatch,
                                                          django_capture_on_commit_callbacks):
    def refuse(*args, **kwargs):
        raise ConnectionError("redis is down")

    monkeypatch.setattr("knowledge.sources.current_app.send_task", refuse)
    with django_capture_on_commit_callbacks(execute=True):
        source = sources.add_text(knowledge_base, "FAQ", SMALL_FAQ)
    assert source.versions.get().status == VersionStatus.QUEUED  # stored, waiting for the sweeper
