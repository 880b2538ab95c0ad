"""Tuned models in the store: register a new version from a folder of weights, publish, delete."""

from __future__ import annotations

import shutil
from pathlib import Path

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Max

from accounts.models import Organization
from store.models import FoundationModel, TunedModel


class TunedModelInUse(Exception):
    pass


def artifact_folder(tuned: TunedModel) -> Path:
    return Path(settings.ARTIFACTS_DIR) / tuned.artifact_path


def _folder_size(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def register_tuned_model(organization: Organization, base: FoundationModel, task: str, method: str, suffix: str,
                         weights_dir: Path, *, labels: list[str], hyperparameters: dict, data_stats: dict,
                         metrics: dict, card_markdown: str, name: str = "",
                         default_system_prompt: str = "") -> TunedModel:
    """Create the next version of (organization, base, suffix) and move the weights into the store."""
    for _attempt in range(5):
        version = (TunedModel.objects.filter(organization=organization, base=base, suffix=suffix)
                   .aggregate(top=Max("version"))["top"] or 0) + 1
        tuned = TunedModel(
            organization=organization, base=base, task=task, method=method, suffix=suffix, version=version,
            slug=f"{suffix}-v{version}", name=name or suffix.replace("-", " ").title(), labels=labels,
            hyperparameters=hyperparameters, data_stats=data_stats, metrics=metrics, card_markdown=card_markdown,
            default_system_prompt=default_system_prompt,
        )
        tuned.artifact_path = f"tuned/{organization.pk}/{tuned.short_id}"
        try:
            with transaction.atomic():
                tuned.save()
        except IntegrityError:
            continue  # another job took this version number at the same moment: take the next one
        target = artifact_folder(tuned)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(weights_dir), target)
        tuned.size_bytes = _folder_size(target)
        tuned.save(update_fields=["size_bytes"])
        return tuned
    raise RuntimeError("could not allocate a version number for the tuned model")


def delete_tuned_model(tuned: TunedModel) -> None:
    """Refuse while a deployment serves it; otherwise remove the row and its weights."""
    deployments = getattr(tuned, "deployments", None)
    if deployments is not None and deployments.exists():
        names = ", ".join(d.slug for d in deployments.all()[:5])
        raise TunedModelInUse(f"{tuned} is deployed ({names}); undeploy it first.")
    folder = artifact_folder(tuned) if tuned.artifact_path else None
    with transaction.atomic():
        tuned.delete()
        if folder is not None:
            transaction.on_commit(lambda: shutil.rmtree(folder, ignore_errors=True))
