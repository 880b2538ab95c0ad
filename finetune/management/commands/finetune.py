"""`manage.py finetune`: upload a file and fine-tune on it, in this process, with a progress bar.

Same code path as the site (dataset validation, job creation, claim, training loop, tuned model
registration). The new tuned model's slug is the last line of stdout, for scripts.
"""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from accounts.models import Organization
from core.broadcast import background_loop
from finetune import jobs
from finetune.datasets import create_dataset
from finetune.models import JobStatus
from store.models import FoundationModel, Method, Task

HYPER_OPTIONS = {
    "epochs": int, "learning_rate": float, "batch_size": int, "gradient_accumulation": int, "max_seq_length": int,
    "warmup_ratio": float, "weight_decay": float, "lora_r": int, "lora_alpha": int, "lora_dropout": float,
    "seed": int, "early_stopping_patience": int, "checkpoint_every_steps": int, "num_virtual_tokens": int,
}


class Command(BaseCommand):
    help = "Fine-tune a catalog model on a data file (prints the tuned model's slug last)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--org", required=True, help="organization slug")
        parser.add_argument("--base", required=True, help="catalog slug of the base model")
        parser.add_argument("--data", required=True, help="JSONL or CSV training file")
        parser.add_argument("--task", required=True, choices=Task.values)
        parser.add_argument("--method", choices=Method.values, help="default: recommended for the base")
        parser.add_argument("--suffix", default="", help="names the tuned model (default: the file name)")
        parser.add_argument("--name", default="", help="dataset name")
        for option, kind in HYPER_OPTIONS.items():
            parser.add_argument(f"--{option.replace('_', '-')}", dest=option, type=kind)

    def handle(self, *args, **options) -> None:
        organization = Organization.objects.filter(slug=options["org"]).first()
        if organization is None:
            raise CommandError(f"No organization with slug {options['org']!r}.")
        base = FoundationModel.objects.filter(slug=options["base"]).first()
        if base is None:
            raise CommandError(f"No base model {options['base']!r} in the catalog (see manage.py sync_catalog).")
        path = Path(options["data"])
        if not path.is_file():
            raise CommandError(f"{path} is not a file.")
        result = create_dataset(organization, path.read_bytes(), path.name, name=options["name"] or path.stem,
                                task=options["task"])
        if result.dataset is None:
            for problem in result.report.problems:
                self.stderr.write(f"{path.name}: {problem}")
            raise CommandError(f"{path.name} is not a valid {options['task']} dataset "
                               f"({len(result.report.problems)} problem(s)); nothing was stored.")
        self.stdout.write(f"Dataset {result.dataset.name}: {result.dataset.row_count} rows, split "
                          f"{result.dataset.stats['split_sizes']}")
        overrides = {key: options[key] for key in HYPER_OPTIONS if options.get(key) is not None}
        try:
            job = jobs.create_job(organization, base, result.dataset, task=options["task"], method=options["method"],
                                  overrides=overrides, suffix=options["suffix"] or path.stem, enqueue=False)
        except jobs.JobRequestError as error:
            raise CommandError("; ".join(error.errors)) from None
        self.stdout.write(f"Job {job.openai_id}: {base.display_name}, {job.task}, {job.method}")
        self.stdout.flush()

        from finetune.cli_progress import TerminalProgress
        from finetune.runner import run_job
        from workers.models.loading import configure_torch_threads

        configure_torch_threads()
        progress = TerminalProgress(stream=sys.stderr)
        with background_loop():  # no event loop of our own here: broadcasts go through the loop thread
            job = run_job(job.pk, f"cli@{socket.gethostname()}:{os.getpid()}", echo=progress)
        progress.close()
        if job.status != JobStatus.SUCCEEDED:
            raise CommandError(f"Fine-tuning {job.status}: {job.error_message or 'see the job events'}")
        tuned = job.tuned_model
        assert tuned is not None  # a succeeded job always registered its model
        self.stdout.write(progress.format_evaluation(job.metrics))
        self.stdout.write(f"Tuned model {tuned.slug} — call it as {tuned.openai_id}")
        self.stdout.write(tuned.slug)
