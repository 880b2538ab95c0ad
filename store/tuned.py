"""Tuned models in the store: register a new version from a folder of weights, publish, delete."""

from __future__ import annotations

from pathlib import Path

from django.db import IntegrityError, transaction
from django.db.models import Max

from accounts.models import Organization
from store import artifacts
from store.models import FoundationModel, TunedModel


class TunedModelInUse(Exception):
    pass


def artifact_folder(tuned: TunedModel) -> Path:
    """A folder on this machine with the tuned model's files: a local storage's own folder (as it is), or a copy
    fetched from any other storage. For benchmarks and tests; workers call artifacts.local_folder, which
    also refuses a missing artifact on a local storage, and pages stream from the storage."""
    return artifacts.local_folder(artifacts.tuned_name(tuned), check=False)


def register_tuned_model(organization: Organization, base: FoundationModel, task: str, method: str, suffix: str,
                         weights_dir: Path, *, labels: list[str], hyperparameters: dict, data_stats: dict,
                         metrics: dict, card_markdown: str, name: str = "",
                         default_system_prompt: str = "") -> TunedModel:
    """Create the next version of (organization, base, suffix) and publish the weights (a local folder, which
    is consumed) to the artifact storage."""
    for _attempt in range(5):
        version = (TunedModel.objects.filter(organization=organization, base=base, suffix=suffix)
                   .aggregate(top=Max("version"))["top"] or 0) + 1
        tuned = TunedModel(
            organization=organization, base=base, task=task, method=method, suffix=suffix, version=version,
            slug=f"{suffix}-v{version}", name=name or suffix.replace("-", " ").title(), labels=labels,
            hyperparameters=hyperparameters, data_stats=data_stats, metrics=metrics, card_markdown=card_markdown,
            default_system_prompt=default_system_prompt,
        )
        tuned.artifact_path = artifacts.new_tuned_name(organization.pk, tuned.short_id)
        try:
            with transaction.atomic():
                tuned.save()
        except IntegrityError:
            continue  # another job took this version number at the same moment: take the next one
        try:
            tuned.size_bytes = artifacts.publish_folder(weights_dir, artifacts.tuned_name(tuned), scratch=True)
        except BaseException:
            tuned.delete()  # no row naming weights that never arrived (the job fails with the error)
            raise
        tuned.save(update_fields=["size_bytes"])
        return tuned
    raise RuntimeError("could not allocate a version number for the tuned model")


def delete_tuned_model(tuned: TunedModel) -> None:
    """Refuse while a deployment serves it; otherwise remove the row and its weights."""
    deployments = getattr(tuned, "deployments", None)
    if deployments is not None and deployments.exists():
        # Only the owner's own deployments are named: organizations that installed it from the
        # marketplace are counted, never named.
        names = ", ".join(d.slug for d in deployments.filter(organization_id=tuned.organization_id)[:5])
        others = deployments.exclude(organization_id=tuned.organization_id).count()
        names = "; ".join(part for part in (names, f"{others} installing organization(s)" if others else "") if part)
        raise TunedModelInUse(f"{tuned} is deployed ({names}); undeploy it first.")
    if getattr(tuned, "listing_versions", None) is not None and tuned.listing_versions.exists():
        raise TunedModelInUse(f"{tuned} is a version of a marketplace listing; installers rely on it.")
    name = artifacts.tuned_name(tuned)
    with transaction.atomic():
        tuned.delete()
        if name:
            transaction.on_commit(lambda: artifacts.delete_folder(name))
