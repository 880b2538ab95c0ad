"""What a training run is asked to do: task, method, hyperparameters and data.

Pure Python (no torch): the lead's forms call `default_hyperparameters` and `check_combination`
in the web process to pre-fill and validate the fine-tune form.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

TASKS = ("dialogue", "sentiment", "embedding")
METHODS = ("lora", "adalora", "ia3", "prefix_tuning", "full")
PEFT_METHODS = ("lora", "adalora", "ia3", "prefix_tuning")
# An embedding model is served as a bare encoder that the engine pools: full weights, or a LoRA adapter
# that peft attaches to the shared base (the engine's other ways of serving adapters are for decoders).
EMBEDDING_METHODS = ("full", "lora")
BATCHING_MODES = ("grouped", "baseline")

# Below these lengths a row cannot hold its scaffolding: a ChatML system + user + assistant turn
# spends ~15 tokens on headers and end-of-turn markers before any content.
MIN_DIALOGUE_SEQ_LENGTH = 64
MIN_SENTIMENT_SEQ_LENGTH = 16
MAX_SEQ_LENGTH = 32768

_DECODER_PREFIXES = ("llama", "mistral", "mixtral", "qwen", "gemma", "phi", "gpt", "falcon", "olmo", "smollm",
                     "stablelm", "starcoder", "opt", "bloom", "granite", "cohere")


def is_decoder_architecture(architecture: str) -> bool:
    """A causal decoder (Llama, Qwen...) as opposed to a bidirectional encoder (BERT, RoBERTa...).

    The catalog stores `config.architectures[0]`, e.g. "LlamaForCausalLM" or "BertModel".
    """
    name = architecture.lower()
    return "causallm" in name or name.startswith(_DECODER_PREFIXES)


@dataclass
class Hyperparameters:
    epochs: int
    learning_rate: float
    batch_size: int
    gradient_accumulation: int = 1
    weight_decay: float = 0.0
    warmup_ratio: float = 0.06
    max_seq_length: int = 512
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    target_modules: list[str] | None = None
    num_virtual_tokens: int = 16
    seed: int = 42
    early_stopping_patience: int | None = None  # evaluations without validation-loss improvement
    eval_every_steps: int | None = None  # None = once per epoch
    checkpoint_every_steps: int = 50
    keep_checkpoints: int = 2
    gradient_checkpointing: bool = False

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Hyperparameters:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown hyperparameters: {', '.join(unknown)}")
        values = dict(data)
        if values.get("target_modules") is not None:
            values["target_modules"] = list(values["target_modules"])
        return cls(**values)


SMALL_MODEL_PARAMETERS = 500_000_000


def _learning_rate(task: str, method: str, parameter_count: int) -> float:
    if method == "full":
        # A pretrained sentence encoder already ranks well: a larger step forgets that faster than
        # a small dataset can teach it something better (sentence-transformers' usual 2e-5).
        return 2e-5 if task in ("dialogue", "embedding") else 5e-5
    if method == "ia3":
        return 3e-3  # IA3 scales activations by ~1.0 vectors: it needs a much larger step than LoRA
    if method == "prefix_tuning":
        return 1e-2
    if task == "dialogue":
        # Measured on SmolLM2-135M + acme-support-faq (docs/dialogue-tuning.md): 2e-4 barely moved the
        # validation loss (2.90) and recalled 4% of held-out facts; 2e-3 over 5 epochs reached 2.00
        # and 28%. Larger (or unknown-size) models keep the usual, safer 2e-4.
        return 2e-3 if 0 < parameter_count <= SMALL_MODEL_PARAMETERS else 2e-4
    if task == "embedding":
        return 2e-4
    return 5e-4


def default_hyperparameters(task: str, method: str, architecture: str, n_train_rows: int,
                            parameter_count: int = 0) -> Hyperparameters:
    """Sensible starting values per task, method and base (its architecture and size), scaled to the dataset size.

    Small datasets get more epochs (up to 10) so that a run makes at least ~30 optimizer steps:
    fewer steps than that barely moves an adapter away from its initialisation.
    """
    decoder = is_decoder_architecture(architecture)
    if task == "dialogue":
        # An adapter needs several passes to learn a shop's facts; full tuning overfits sooner.
        epochs, batch_size, max_seq_length = (3 if method == "full" else 5), 8, 512
    elif task == "embedding":
        # Every other passage of a batch is a negative for a query: larger batches teach more per step.
        # 256 word pieces is what all-MiniLM-L6-v2 was trained to read.
        epochs, batch_size, max_seq_length = 4, 32, 256
    else:
        epochs, max_seq_length = 4, 128
        batch_size = 16 if decoder else 32
    rows = max(1, n_train_rows)
    batch_size = max(1, min(batch_size, rows))
    steps_per_epoch = math.ceil(rows / batch_size)
    epochs = min(10, max(epochs, math.ceil(30 / steps_per_epoch)))
    total_steps = epochs * steps_per_epoch
    return Hyperparameters(
        epochs=epochs,
        learning_rate=_learning_rate(task, method, parameter_count),
        batch_size=batch_size,
        weight_decay=0.01 if method == "full" else 0.0,
        max_seq_length=max_seq_length,
        checkpoint_every_steps=max(10, min(50, total_steps // 4 or 1)),
    )


def check_combination(task: str, method: str, architecture: str, hyper: Hyperparameters) -> list[str]:
    """Human-readable reasons why this run cannot start; an empty list means it can."""
    errors: list[str] = []
    if task not in TASKS:
        errors.append(f"Unknown task {task!r}: choose one of {', '.join(TASKS)}.")
    if method not in METHODS:
        errors.append(f"Unknown tuning method {method!r}: choose one of {', '.join(METHODS)}.")
    decoder = is_decoder_architecture(architecture)
    if task == "dialogue" and not decoder:
        errors.append(f"Dialogue needs a chat (causal decoder) model; {architecture} is an encoder. "
                      "Use it for sentiment instead.")
    if task == "embedding":
        _check_embedding(method, decoder, architecture, hyper, errors)
    if task == "sentiment" and method == "prefix_tuning":
        # peft 0.21 looks for a `past_key_values` argument that transformers 5 renamed to `cache`,
        # and its classifier fallback misreads transformers 5 outputs: the run would crash.
        errors.append("Prefix tuning is not available for sentiment models with the pinned transformers/peft "
                      "versions. Use LoRA, AdaLoRA or IA3.")
    _check_training_values(hyper, errors)
    _check_method_values(method, hyper, errors)
    minimum = MIN_DIALOGUE_SEQ_LENGTH if task == "dialogue" else MIN_SENTIMENT_SEQ_LENGTH
    if not minimum <= hyper.max_seq_length <= MAX_SEQ_LENGTH:
        what = "a system, a user and an assistant turn" if task == "dialogue" else "a sentence"
        errors.append(f"Maximum sequence length must be between {minimum} and {MAX_SEQ_LENGTH} tokens "
                      f"(shorter cannot hold {what}).")
    return errors


def _check_embedding(method: str, decoder: bool, architecture: str, hyper: Hyperparameters,
                     errors: list[str]) -> None:
    if decoder:
        errors.append(f"Embedding needs an encoder (a BERT-like model such as all-MiniLM-L6-v2); {architecture} is a "
                      "causal decoder. Use it for dialogue or sentiment instead.")
    if method in METHODS and method not in EMBEDDING_METHODS:
        errors.append(f"Embedding models are tuned fully or with LoRA; {method} is not available for them "
                      "(the serving engine pools a bare encoder, with or without a LoRA adapter).")
    if hyper.batch_size == 1:  # below 1 is reported with the other training values
        errors.append("Embedding training compares each query with the other passages of its batch: "
                      "the batch size must be at least 2.")


def _check_training_values(hyper: Hyperparameters, errors: list[str]) -> None:
    if hyper.epochs < 1:
        errors.append("Epochs must be at least 1.")
    if not 0 < hyper.learning_rate < 1:
        errors.append("Learning rate must be between 0 and 1 (exclusive), e.g. 2e-4.")
    if hyper.batch_size < 1:
        errors.append("Batch size must be at least 1.")
    if hyper.gradient_accumulation < 1:
        errors.append("Gradient accumulation must be at least 1.")
    if hyper.weight_decay < 0:
        errors.append("Weight decay cannot be negative.")
    if not 0 <= hyper.warmup_ratio < 1:
        errors.append("Warm-up ratio must be at least 0 and below 1.")
    if hyper.early_stopping_patience is not None and hyper.early_stopping_patience < 1:
        errors.append("Early-stopping patience must be at least 1 evaluation (or empty to turn it off).")
    if hyper.eval_every_steps is not None and hyper.eval_every_steps < 1:
        errors.append("Evaluate-every-steps must be at least 1 (or empty for once per epoch).")
    if hyper.checkpoint_every_steps < 1:
        errors.append("Checkpoint-every-steps must be at least 1.")
    if hyper.keep_checkpoints < 1:
        errors.append("Keep at least 1 checkpoint, or a crashed run cannot resume.")


def _check_method_values(method: str, hyper: Hyperparameters, errors: list[str]) -> None:
    if method in ("lora", "adalora"):
        if hyper.lora_r < 1:
            errors.append("LoRA rank must be at least 1.")
        if hyper.lora_alpha <= 0:
            errors.append("LoRA alpha must be positive.")
        if not 0 <= hyper.lora_dropout < 1:
            errors.append("LoRA dropout must be at least 0 and below 1.")
    if hyper.target_modules is not None and method not in ("lora", "adalora", "ia3"):
        errors.append("Target modules only apply to LoRA, AdaLoRA and IA3.")
    if hyper.target_modules is not None and not hyper.target_modules:
        errors.append("Target modules cannot be an empty list (leave it empty for the model's defaults).")
    if method == "prefix_tuning":
        if hyper.num_virtual_tokens < 1:
            errors.append("Prefix tuning needs at least 1 virtual token.")
        if hyper.gradient_checkpointing:
            errors.append("Prefix tuning cannot be combined with gradient checkpointing "
                          "(the learned prefix is passed as a key/value cache, which checkpointing drops).")


@dataclass
class TrainingSpec:
    task: str
    method: str
    base_folder: Path
    architecture: str
    hyper: Hyperparameters
    # dialogue: {"messages": [{"role", "content"}, ...]}; sentiment: {"text", "label"}; embedding: {"query", "passage"}
    train_rows: list[dict]
    validation_rows: list[dict]
    test_rows: list[dict]
    labels: list[str]  # sentiment label names in a fixed order; [] for dialogue
    output_dir: Path  # final artifacts
    checkpoint_dir: Path  # step-<n>/ folders
    # Continued training: the parent tuned model's folder (its adapter, or its full weights for "full");
    # training starts from those weights instead of a fresh adapter or the base.
    init_from: Path | None = None
    device: str = "cpu"
    batching: str = "grouped"  # "grouped" (ours) | "baseline" (the benchmark's reference)
    final_evaluation: bool = True  # the benchmark turns off the test-set report and sample replies
    sample_count: int = 8  # held-out prompts answered by base and tuned model side by side
    sample_max_new_tokens: int = 80
    extra: dict = field(default_factory=dict)  # free-form, copied into gpt_store.json (e.g. job id)
