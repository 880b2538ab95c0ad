"""Fixtures for the serving engine: tiny adapters of every peft method, a recording sink, an engine.

The engine runs on the tiny random Llama / BERT from tests/tiny_models.py, on one CPU thread.
Adapters use random (not zero) initial weights so each one really changes the model's output.
"""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    import torch

    torch.set_num_threads(1)


def _random_adapter(base_folder: Path, config, target: Path, seed: int, model_class: str = "causal",
                    labels: int = 0) -> Path:
    import torch
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    torch.manual_seed(seed)
    if model_class == "causal":
        model = AutoModelForCausalLM.from_pretrained(base_folder, dtype=torch.float32)
    else:
        model = AutoModelForSequenceClassification.from_pretrained(base_folder, num_labels=labels, dtype=torch.float32)
    peft_model = get_peft_model(model, config)
    with torch.no_grad():
        for name, parameter in peft_model.named_parameters():
            if parameter.requires_grad:  # adapter weights and saved heads; the base stays frozen
                parameter.normal_(0.0, 0.5 if "prompt_encoder" in name else 0.2)
    peft_model.save_pretrained(target)
    return target


@pytest.fixture(scope="session")
def lora_folders(tiny_chat_folder, tmp_path_factory) -> list[Path]:
    """Three LoRA adapters (q/k/v/o) of the tiny chat model, each with different random weights."""
    from peft import LoraConfig

    root = tmp_path_factory.mktemp("lora")
    config = lambda: LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],  # noqa: E731
                                init_lora_weights=False)
    return [_random_adapter(tiny_chat_folder, config(), root / f"lora{i}", seed=10 + i) for i in range(3)]


@pytest.fixture(scope="session")
def method_folders(tiny_chat_folder, tmp_path_factory) -> dict[str, Path]:
    """One adapter per method that cannot share a LoRA-served base, plus a full fine-tune."""
    import torch
    from peft import AdaLoraConfig, IA3Config, PrefixTuningConfig
    from transformers import AutoModelForCausalLM

    root = tmp_path_factory.mktemp("methods")
    folders = {
        "ia3": _random_adapter(tiny_chat_folder, IA3Config(target_modules=["k_proj", "v_proj", "down_proj"],
                                                           feedforward_modules=["down_proj"]), root / "ia3", seed=20),
        "adalora": _random_adapter(tiny_chat_folder, AdaLoraConfig(init_r=4, target_r=2, total_step=10,
                                                                   target_modules=["q_proj", "v_proj"]),
                                   root / "adalora", seed=21),
        "prefix_tuning": _random_adapter(tiny_chat_folder, PrefixTuningConfig(task_type="CAUSAL_LM",
                                                                              num_virtual_tokens=4),
                                         root / "prefix", seed=22),
    }
    torch.manual_seed(23)
    full = AutoModelForCausalLM.from_pretrained(tiny_chat_folder, dtype=torch.float32)
    with torch.no_grad():
        for parameter in full.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.05)
    full.save_pretrained(root / "full")
    folders["full"] = root / "full"
    return folders


@pytest.fixture(scope="session")
def classifier_folders(tiny_encoder_folder, tmp_path_factory) -> dict[str, Path]:
    """LoRA sentiment adapters of the tiny encoder: two with 3 labels, one with 2 labels."""
    from peft import LoraConfig

    root = tmp_path_factory.mktemp("classifiers")
    config = lambda: LoraConfig(task_type="SEQ_CLS", r=4, target_modules=["query", "value"],  # noqa: E731
                                init_lora_weights=False)
    return {
        "three_a": _random_adapter(tiny_encoder_folder, config(), root / "three_a", 30, "classifier", 3),
        "three_b": _random_adapter(tiny_encoder_folder, config(), root / "three_b", 31, "classifier", 3),
        "two": _random_adapter(tiny_encoder_folder, config(), root / "two", 32, "classifier", 2),
    }


@pytest.fixture
def make_engine():
    """Build (and at teardown stop) an engine over a dict of specs; unknown keys raise KeyError."""
    from workers.serving.engine import InferenceEngine

    engines = []

    def build(specs: dict, start: bool = True, **options):
        engine = InferenceEngine(lambda key: specs[key], device="cpu", **options)
        engines.append(engine)
        if start:
            engine.start()
        return engine

    yield build
    for engine in engines:
        engine.stop()
