"""`manage.py train_retrieval_model`: re-train GPT Store Retrieval (store/bundled/gpt-store-retrieval/)."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = ("Tune all-MiniLM-L6-v2 (LoRA) for help-centre retrieval and answerability on finetune/retrieval_data/ (but "
            "the help centres in its evaluation-only.txt), calibrate it on the held-out businesses, and write "
            "the adapter (about 30 minutes on 2 CPU cores).")

    def add_arguments(self, parser) -> None:
        parser.add_argument("--epochs", type=int, default=3)
        parser.add_argument("--output", default="", help="folder for the adapter (default: the bundled one)")

    def handle(self, *args, epochs: int, output: str, **options) -> None:
        from finetune.retrieval_model import train
        from store.catalog import BUNDLED_DIR
        from workers.models.loading import configure_torch_threads

        configure_torch_threads()

        def echo(line: str) -> None:
            self.stdout.write(line)
            self.stdout.flush()

        train(Path(output) if output else BUNDLED_DIR / "gpt-store-retrieval", epochs=epochs, echo=echo)
