"""`manage.py train_answer_checker`: re-train the answer checker shipped in knowledge/answer_checker/."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = ("Tune the knowledge answer checker (all-MiniLM-L6-v2 + LoRA) on finetune/answer_checker_data/ and "
            "write the adapter to knowledge/answer_checker/ (about 25 minutes per epoch on 2 CPU cores).")

    def add_arguments(self, parser) -> None:
        parser.add_argument("--epochs", type=int, default=2)
        parser.add_argument("--output", default="", help="folder for the adapter (default: the shipped one)")

    def handle(self, *args, epochs: int, output: str, **options) -> None:
        from finetune.answer_checker import train
        from knowledge.checker import CHECKER_FOLDER
        from store.serving.loading import configure_torch_threads

        configure_torch_threads()

        def echo(line: str) -> None:
            self.stdout.write(line)
            self.stdout.flush()

        metrics = train(Path(output) if output else CHECKER_FOLDER, epochs=epochs, echo=echo)
        self.stdout.write(f"accuracy {metrics.get('accuracy', 0):.3f}, macro-F1 {metrics.get('macro_f1', 0):.3f} "
                          f"on {metrics['validation_rows']} validation rows")
