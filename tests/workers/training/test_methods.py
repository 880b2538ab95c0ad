"""Every tuning method trains, on a decoder for dialogue and on encoder or decoder for sentiment."""

from __future__ import annotations

import pytest

from tests.workers.training.conftest import RecordingCallbacks, adapter_weights, chat
from workers.training.loop import TrainingError, run_training


@pytest.mark.parametrize("method", ["lora", "adalora", "ia3", "prefix_tuning", "full"])
def test_it_trains_every_method_for_dialogue(make_spec, method):
    spec = make_spec(method=method, hyper={"batch_size": 6})
    result = run_training(spec, RecordingCallbacks())
    assert (result.status, result.steps_run, result.total_steps) == ("completed", 2, 2)
    expected = "model.safetensors" if method == "full" else "adapter_model.safetensors"
    assert (result.adapter_dir / expected).exists()


@pytest.mark.parametrize("method", ["lora", "adalora", "ia3"])
def test_it_trains_peft_methods_and_the_head_for_sentiment_on_an_encoder(make_spec, method):
    spec = make_spec(task="sentiment", method=method, hyper={"batch_size": 6})
    result = run_training(spec, RecordingCallbacks())
    assert result.status == "completed"
    saved = adapter_weights(result.adapter_dir)
    assert any("classifier" in name for name in saved), "the new head must be trained and saved"


def test_it_fully_tunes_a_sentiment_encoder(make_spec):
    result = run_training(make_spec(task="sentiment", method="full", hyper={"batch_size": 6}), RecordingCallbacks())
    assert result.status == "completed"
    assert "classifier.weight" in adapter_weights(result.adapter_dir)


def test_it_trains_a_sentiment_head_on_a_decoder(make_spec, tiny_chat_folder):
    spec = make_spec(task="sentiment", method="lora", base_folder=tiny_chat_folder, architecture="LlamaForCausalLM",
                     hyper={"batch_size": 6})
    callbacks = RecordingCallbacks()
    result = run_training(spec, callbacks)
    assert result.status == "completed"
    assert any("score" in name for name in adapter_weights(result.adapter_dir))


def test_it_refuses_prefix_tuning_for_sentiment(make_spec):
    with pytest.raises(TrainingError, match="Prefix tuning is not available for sentiment"):
        run_training(make_spec(task="sentiment", method="prefix_tuning"), RecordingCallbacks())


def test_it_reallocates_adalora_ranks_after_every_optimizer_step(make_spec, monkeypatch):
    from peft.tuners.adalora import AdaLoraModel

    seen = []
    original = AdaLoraModel.update_and_allocate

    def spy(self, global_step):
        seen.append(global_step)
        return original(self, global_step)

    monkeypatch.setattr(AdaLoraModel, "update_and_allocate", spy)
    result = run_training(make_spec(method="adalora", hyper={"batch_size": 3}), RecordingCallbacks())
    assert seen == [1, 2, 3, 4] == list(range(1, result.total_steps + 1))


def training_batch(spec, rows):
    from workers.models.loading import load_tokenizer
    from workers.training.batching import collate
    from workers.training.data import encode_dialogue
    from workers.training.modeling import build_model

    tokenizer = load_tokenizer(spec.base_folder)
    encoded, _ = encode_dialogue(tokenizer, rows, 128)
    batch = collate(encoded, tokenizer.pad_token_id, "dialogue")
    return build_model(spec, tokenizer.pad_token_id, total_steps=1), batch


@pytest.mark.parametrize("method", ["lora", "full"])
def test_it_gets_the_same_loss_and_gradients_from_labelled_positions_as_from_full_logits(make_spec, chat_rows,
                                                                                         method):
    import torch

    from workers.training.modeling import dialogue_loss_sum, shared_prefix_length, trainable_parameters

    model, batch = training_batch(make_spec(method=method), chat_rows[-4:])
    assert shared_prefix_length(batch) > 0  # the rows share their system prompt: that path is exercised
    losses, gradients = {}, {}
    for path in ("labelled", "full"):
        model.zero_grad()
        losses[path] = dialogue_loss_sum(model, batch, path)
        losses[path].backward()
        gradients[path] = {name: p.grad.clone() for name, p in trainable_parameters(model).items()}
    assert torch.allclose(losses["labelled"], losses["full"], rtol=1e-5)
    for name, gradient in gradients["full"].items():
        assert torch.allclose(gradients["labelled"][name], gradient, rtol=1e-4, atol=1e-6), name


def test_it_shares_the_prefix_up_to_the_token_before_the_first_label(make_spec):
    from workers.training.modeling import shared_prefix_length

    rows = [chat("Where is my order?", "It ships today."), chat("Where is my parcel?", "On its way.")]
    _, batch = training_batch(make_spec(), rows)
    start = shared_prefix_length(batch)
    assert (batch.input_ids[0, :start] == batch.input_ids[1, :start]).all()
    assert batch.input_ids[0, start] != batch.input_ids[1, start] or (batch.labels[:, start + 1] != -100).any()
    assert (batch.labels[:, :start + 1] == -100).all()
