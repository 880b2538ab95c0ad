"""Helpers shared by the serving tests: a recording sink, chat messages, a plain-peft reference."""

from __future__ import annotations

import threading
import time
from pathlib import Path


class RecordingSink:
    """Collects what the engine sends, with the time of each call."""

    def __init__(self) -> None:
        self.started: dict | None = None
        self.chunks: list[tuple[float, str, int]] = []
        self.result: dict | None = None
        self.error: tuple[str, str] | None = None
        self.finished = threading.Event()
        self.finished_at: float | None = None
        self.first_token = threading.Event()

    def on_start(self, info: dict) -> None:
        self.started = info

    def on_tokens(self, text: str, n_tokens: int) -> None:
        self.chunks.append((time.monotonic(), text, n_tokens))
        self.first_token.set()

    def on_done(self, result: dict) -> None:
        self.result = result
        self.finished_at = time.monotonic()
        self.finished.set()

    def on_error(self, code: str, message: str) -> None:
        self.error = (code, message)
        self.finished_at = time.monotonic()
        self.finished.set()

    def wait(self, timeout: float = 60) -> RecordingSink:
        assert self.finished.wait(timeout), "the engine did not answer in time"
        return self

    @property
    def text(self) -> str:
        return "".join(text for _, text, _ in self.chunks)


SYSTEM = {"role": "system", "content": "You are a shop assistant."}


def chat(text: str) -> list[dict]:
    return [SYSTEM, {"role": "user", "content": text}]


def prompt_ids(folder: Path, messages: list[dict]) -> list[int]:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    return list(tokenizer.apply_chat_template(messages, add_generation_prompt=True)["input_ids"])


def reference_model(base_folder: Path, adapter_folder: Path | None = None):
    """The model a single request would see through plain transformers/peft, no engine involved."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base_folder, dtype=torch.float32).eval()
    if adapter_folder is not None:
        model = PeftModel.from_pretrained(model, adapter_folder).eval()
    return model


def assert_greedy_path(model, prompt: list[int], generated: list[int], tolerance: float = 1e-3) -> None:
    """Each emitted token is the single-model greedy choice for its prefix, up to near-ties."""
    import torch

    assert generated, "nothing was generated"
    for step, token in enumerate(generated):
        ids = torch.tensor([prompt + generated[:step]])
        with torch.no_grad():
            logits = model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits[0, -1]
        assert logits[token] >= logits.max() - tolerance, (
            f"step {step}: emitted {token} (logit {logits[token]:.5f}), best {int(logits.argmax())} "
            f"(logit {logits.max():.5f})")
