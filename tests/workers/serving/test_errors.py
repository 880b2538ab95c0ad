"""A failure belongs to one request: the engine thread keeps serving the others."""

from store.inference.protocol import (
    INTERNAL,
    MODEL_NOT_FOUND,
    ClassificationRequest,
    EngineError,
    GenerationRequest,
    ModelSpec,
)
from tests.workers.serving.helpers import RecordingSink, chat


def _request(request_id: str, model_key: str = "base", max_tokens: int = 3) -> GenerationRequest:
    return GenerationRequest(request_id, model_key, chat("Hi"), max_tokens=max_tokens, temperature=0,
                             ignore_eos=True)


def test_it_answers_an_unknown_model_and_keeps_serving(make_engine, tiny_chat_folder):
    specs = {"base": ModelSpec("base", "causal", str(tiny_chat_folder))}

    def resolve(key: str) -> ModelSpec:
        if key == "tuned:gone":
            raise EngineError(MODEL_NOT_FOUND, "deleted")
        return specs[key]  # KeyError for anything else

    engine = make_engine(specs)
    engine.resolve = resolve
    unknown, gone, classify, fine = RecordingSink(), RecordingSink(), RecordingSink(), RecordingSink()
    engine.submit_generation(_request("unknown", "tuned:nope"), unknown)
    engine.submit_generation(_request("gone", "tuned:gone"), gone)
    engine.submit_classification(ClassificationRequest("cls", "tuned:nope", ["hi"]), classify)
    engine.submit_generation(_request("fine"), fine)

    assert unknown.wait().error[0] == gone.wait().error[0] == classify.wait().error[0] == MODEL_NOT_FOUND
    assert fine.wait().result["completion_tokens"] == 3


def test_it_fails_the_rows_of_a_step_that_raised_and_keeps_serving(make_engine, tiny_chat_folder):
    engine = make_engine({"base": ModelSpec("base", "causal", str(tiny_chat_folder))})
    engine.preload(["base"])
    [entry] = engine.cache._entries.values()
    forward = entry.model.forward
    failures = []

    def flaky_forward(*args, **kwargs):
        if kwargs["input_ids"].shape[1] == 1 and not failures:  # the first decode step only
            failures.append(True)
            raise RuntimeError("CUDA error: an illegal memory access was encountered")
        return forward(*args, **kwargs)

    entry.model.forward = flaky_forward
    victims = [RecordingSink(), RecordingSink()]
    for i, sink in enumerate(victims):
        engine.submit_generation(_request(f"victim{i}", max_tokens=50), sink)
    assert all(sink.wait().error[0] == INTERNAL for sink in victims)

    after = RecordingSink()
    engine.submit_generation(_request("after"), after)
    assert after.wait().result["completion_tokens"] == 3
    assert engine.resident()["entries"][0]["active_rows"] == 0  # the failed rows released the model


def test_it_drops_a_row_whose_sink_raises_and_serves_the_rest(make_engine, tiny_chat_folder):
    class BrokenSink(RecordingSink):
        def on_tokens(self, text: str, n_tokens: int) -> None:
            raise ConnectionError("the relay is gone")

    engine = make_engine({"base": ModelSpec("base", "causal", str(tiny_chat_folder))}, start=False)
    broken, healthy = BrokenSink(), RecordingSink()
    engine.submit_generation(_request("broken", max_tokens=100), broken)
    engine.submit_generation(_request("healthy", max_tokens=100), healthy)
    engine.start()

    assert broken.wait().result["finish_reason"] == "cancelled"
    assert healthy.wait().result["completion_tokens"] == 100


def test_it_preloads_and_warms_up_models(make_engine, tiny_chat_folder, tiny_encoder_folder):
    from workers.serving.warmup import WARMUP_BATCH

    engine = make_engine({
        "base": ModelSpec("base", "causal", str(tiny_chat_folder)),
        "sentiment": ModelSpec("sentiment", "classifier", str(tiny_encoder_folder), labels=["neg", "pos"]),
    })
    engine.preload(["base", "sentiment", "missing"])

    counters = engine.counters()
    assert counters["model_loads"] == 2
    # The chat model: one request, then WARMUP_BATCH at once (one prefill, decoded as one batch).
    assert counters["prefill_calls"] == 2 and counters["max_rows_in_step"] == WARMUP_BATCH
    assert counters["generation_requests"] == 1 + WARMUP_BATCH
    assert counters["classification_forward_calls"] == 1
    assert {entry["kind"] for entry in engine.resident()["entries"]} == {"causal", "classifier"}
