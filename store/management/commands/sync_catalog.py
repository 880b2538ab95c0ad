from django.core.management.base import BaseCommand

from store.catalog import is_available, sync_catalog
from store.models import FoundationModel


class Command(BaseCommand):
    help = "Register the bundled base models in the catalog (idempotent)."

    def handle(self, *args, **options) -> None:
        result = sync_catalog()
        for slug in result.created:
            self.stdout.write(f"added   {slug}")
        for slug in result.updated:
            self.stdout.write(f"updated {slug}")
        for model in FoundationModel.objects.filter(bundled=True):
            if not is_available(model):
                self.stderr.write(self.style.WARNING(f"{model.slug}: weights not installed on this machine"))
        self.stdout.write(
            f"catalog: {len(result.created)} added, {len(result.updated)} updated, {len(result.unchanged)} unchanged"
        )
