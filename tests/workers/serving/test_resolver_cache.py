"""The worker's resolver keeps a catalog model's spec for a while (workers/serving/resolver.py): a request
no longer reads the catalog, yet a catalog edit or removal, or the end of the window, is seen on the next
request. (transactional_db: the resolver closes stale connections, as the engine thread must.)"""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from workers.serving import resolver


def resolve_counting_queries(key: str):
    with CaptureQueriesContext(connection) as queries:
        spec = resolver.resolve_model_key(key)
    return spec, len(queries)


def test_a_catalog_key_reads_the_catalog_once_within_the_window(transactional_db, tiny_encoder_base):
    key = f"encoder:{tiny_encoder_base.slug}"
    first, first_queries = resolve_counting_queries(key)
    again, again_queries = resolve_counting_queries(key)
    assert first_queries >= 1 and again_queries == 0
    assert again == first and again.kind == "encoder"


def test_the_window_ends(transactional_db, tiny_encoder_base, monkeypatch):
    key = f"encoder:{tiny_encoder_base.slug}"
    resolver.resolve_model_key(key)
    clock = resolver.time.monotonic() + resolver.CATALOG_SPEC_SECONDS + 1
    monkeypatch.setattr(resolver.time, "monotonic", lambda: clock)
    _, queries = resolve_counting_queries(key)
    assert queries >= 1


def test_editing_the_catalog_is_seen_on_the_next_request(transactional_db, tiny_encoder_base):
    key = f"encoder:{tiny_encoder_base.slug}"
    resolver.resolve_model_key(key)
    tiny_encoder_base.supports_embedding = False
    tiny_encoder_base.save(update_fields=["supports_embedding"])
    with pytest.raises(resolver.EngineError, match="does not make sentence embeddings"):
        resolver.resolve_model_key(key)


def test_removing_a_catalog_model_is_seen_on_the_next_request(transactional_db, tiny_encoder_base):
    key = f"encoder:{tiny_encoder_base.slug}"
    resolver.resolve_model_key(key)
    tiny_encoder_base.delete()
    with pytest.raises(resolver.EngineError, match="no catalog model"):
        resolver.resolve_model_key(key)


def test_unknown_keys_are_not_remembered(transactional_db):
    for _ in range(2):
        with CaptureQueriesContext(connection) as queries, pytest.raises(resolver.EngineError, match="no catalog"):
            resolver.resolve_model_key("encoder:no-such-model")
        assert len(queries) >= 1
