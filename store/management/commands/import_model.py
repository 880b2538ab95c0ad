from django.core.management.base import BaseCommand, CommandError

from store.catalog import CatalogError, import_model


class Command(BaseCommand):
    help = "Add a transformers model to the catalog from a local folder or a hub id (org/name)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("reference", help="a local model folder, or a hub id such as org/name")
        parser.add_argument("--slug", help="catalog slug (default: derived from the name)")
        parser.add_argument("--name", help="display name")

    def handle(self, *args, reference: str, slug: str | None, name: str | None, **options) -> None:
        try:
            model = import_model(reference, slug=slug, display_name=name)
        except CatalogError as error:
            raise CommandError(str(error)) from None
        tasks = ", ".join(model.tasks)
        self.stdout.write(f"{model.display_name}: {model.architecture}, {model.parameters_display} parameters, "
                          f"context {model.context_length}, tasks: {tasks}")
        self.stdout.write(model.slug)
