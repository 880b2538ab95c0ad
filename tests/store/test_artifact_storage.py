"""Tuned-model artifacts go through the artifact storage (store/artifacts.py): a training worker and an inference
worker that share nothing but the storage still tune, serve, merge and download a model."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from unittest import mock

import pytest
from django.core.files.storage import FileSystemStorage, Storage
from django.urls import reverse

from store import artifacts
from store.inference.protocol import INTERNAL, ClassificationRequest, EngineError
from tests.factories import train_tiny_sentiment

TEXTS = ["Love these boots", "Still no parcel, this is awful"]


class RemoteStorage(Storage):
    """A storage reached only through Django's storage API, as S3 is: no `path()`, so every reader must fetch.
    Files live in a folder (OPTIONS "location") that no worker uses as its own."""

    def __init__(self, location: str) -> None:
        self.inner = FileSystemStorage(location=location)

    def _open(self, name, mode="rb"):
        return self.inner._open(name, mode)

    def _save(self, name, content):
        return self.inner._save(name, content)

    def get_available_name(self, name, max_length=None):
        return self.inner.get_available_name(name, max_length)

    def delete(self, name):
        self.inner.delete(name)

    def exists(self, name):
        return self.inner.exists(name)

    def listdir(self, path):
        return self.inner.listdir(path)

    def size(self, name):
        return self.inner.size(name)

    def get_modified_time(self, name):
        return self.inner.get_modified_time(name)


@pytest.fixture
def machines(settings, tmp_path):
    """The storage, the training worker's own folder and the inference worker's own cache: three places."""
    places = {name: tmp_path / name for name in ("storage", "trainer", "inference-cache")}
    settings.STORAGES = {**settings.STORAGES, "artifacts": {
        "BACKEND": f"{__name__}.RemoteStorage", "OPTIONS": {"location": str(places["storage"])}}}
    settings.ARTIFACTS_DIR = places["trainer"]
    settings.ARTIFACTS_CACHE_DIR = places["inference-cache"]
    return places


def zip_names(response) -> dict[str, bytes]:
    assert response.status_code == 200 and response["Content-Type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    return {name.split("/", 1)[1]: archive.read(name) for name in archive.namelist()}


def classify(key: str):
    from tests.workers.serving.helpers import RecordingSink
    from workers.serving.engine import InferenceEngine
    from workers.serving.resolver import resolve_model_key

    engine = InferenceEngine(resolve_model_key, device="cpu")
    engine.start()
    try:
        sink = RecordingSink()
        engine.submit_classification(ClassificationRequest("shared-storage", key, TEXTS), sink)
        return sink.wait()
    finally:
        engine.stop()


def test_it_tunes_serves_merges_and_downloads_with_only_the_storage_shared(transactional_db, alice,
                                                                           tiny_encoder_base, machines, settings):
    from workers.serving.resolver import resolve_model_key

    tuned = train_tiny_sentiment(alice.organization, tiny_encoder_base, method="lora")
    stored = machines["storage"] / tuned.artifact_path
    assert (stored / "adapter_model.safetensors").is_file() and (stored / artifacts.MANIFEST).is_file()
    assert not list((machines["trainer"] / "jobs").glob("*/output"))  # the local output was consumed
    shutil.rmtree(machines["trainer"])  # nothing the training worker kept is needed from here on

    spec = resolve_model_key(f"tuned:{tuned.pk}")
    assert Path(spec.adapter_folder).is_relative_to(machines["inference-cache"])
    served = classify(f"tuned:{tuned.pk}")
    assert served.error is None and [item["label"] for item in served.result["results"]]
    assert set(served.result["results"][0]["scores"]) == set(tuned.labels)

    files = zip_names(alice.client.get(reverse("store:tuned_download", args=[tuned.short_id])))
    assert files["adapter_model.safetensors"] == (stored / "adapter_model.safetensors").read_bytes()
    assert set(files) == {item.path for item in artifacts.files(tuned.artifact_path)}

    settings.ARTIFACTS_DIR = machines["trainer"].with_name("another-training-worker")
    response = alice.client.post(reverse("store:tuned_merge", args=[tuned.short_id]))
    assert response.status_code == 302  # the (eager, in tests) task merged it on "another" worker
    tuned.refresh_from_db()
    assert tuned.merged_status == "ready", tuned.merged_error
    merged = zip_names(alice.client.get(reverse("store:tuned_merged_download", args=[tuned.short_id])))
    assert "model.safetensors" in merged and "config.json" in merged
    assert "merged/config.json" not in zip_names(
        alice.client.get(reverse("store:tuned_download", args=[tuned.short_id])))  # two artifacts, not one


def test_a_changed_artifact_is_fetched_again_and_an_unchanged_one_is_not(db, machines, tmp_path):
    source = tmp_path / "weights"
    source.mkdir()
    (source / "adapter_config.json").write_text('{"r": 8}')
    artifacts.publish_folder(source, "tuned/1/abc")
    first = artifacts.local_folder("tuned/1/abc")
    assert first.is_relative_to(machines["inference-cache"])
    assert (first / "adapter_config.json").read_text() == '{"r": 8}'
    assert artifacts.local_folder("tuned/1/abc") == first

    (source / "adapter_config.json").write_text('{"r": 16}')
    artifacts.publish_folder(source, "tuned/1/abc")
    second = artifacts.local_folder("tuned/1/abc")
    assert second != first and (second / "adapter_config.json").read_text() == '{"r": 16}'


def test_a_missing_artifact_is_a_clear_error_for_the_worker_the_download_and_the_merge(transactional_db, alice,
                                                                                      tiny_encoder_base, machines):
    from workers.serving.resolver import resolve_model_key

    tuned = train_tiny_sentiment(alice.organization, tiny_encoder_base, method="lora")
    shutil.rmtree(machines["storage"] / tuned.artifact_path)

    with pytest.raises(artifacts.ArtifactMissing, match=rf"'{tuned.artifact_path}' is not in the artifact storage "
                                                        rf"\(RemoteStorage\)"):
        artifacts.local_folder(tuned.artifact_path)
    with pytest.raises(EngineError) as refused:
        resolve_model_key(f"tuned:{tuned.pk}")
    assert refused.value.code == INTERNAL
    assert refused.value.message.startswith(f"the weights of {tuned.slug} are missing from the artifact storage")

    response = alice.client.get(reverse("store:tuned_download", args=[tuned.short_id]), follow=True)
    assert response.redirect_chain[-1][0] == reverse("store:tuned_detail", args=[tuned.short_id])
    assert "The weights of this model are missing from the artifact storage." in response.content.decode()

    alice.client.post(reverse("store:tuned_merge", args=[tuned.short_id]))
    tuned.refresh_from_db()
    assert tuned.merged_status == "failed"
    assert tuned.merged_error == (f"The artifact '{tuned.artifact_path}' is not in the artifact storage "
                                  "(RemoteStorage).")


def test_a_file_that_does_not_match_its_manifest_is_refused(db, machines, tmp_path):
    source = tmp_path / "weights"
    source.mkdir()
    (source / "adapter_model.safetensors").write_bytes(b"weights")
    artifacts.publish_folder(source, "tuned/1/xyz")
    (machines["storage"] / "tuned/1/xyz/adapter_model.safetensors").write_bytes(b"other!!")  # same size
    with pytest.raises(artifacts.ArtifactMissing, match="adapter_model.safetensors does not match its manifest"):
        artifacts.local_folder("tuned/1/xyz")
    cached = machines["inference-cache"] / "tuned/1/xyz"
    assert not cached.exists() or list(cached.iterdir()) == []  # nothing half-fetched is left to be loaded


def test_the_storage_is_a_folder_by_default_and_any_backend_by_environment(tmp_path):
    probe = ("from django.conf import settings; import json; "
             "print(json.dumps(settings.STORAGES['artifacts'], default=str))")

    def artifact_storage(**env) -> dict:
        environment = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", "GPT_STORE_DATA_DIR": str(tmp_path),
                       **env}
        environment.pop("GPT_STORE_ARTIFACTS_DIR", None)
        output = subprocess.run([sys.executable, "-c", f"import django; django.setup(); {probe}"], env=environment,
                                capture_output=True, text=True, check=True).stdout
        return json.loads(output)

    assert artifact_storage() == {"BACKEND": "django.core.files.storage.FileSystemStorage",
                                  "OPTIONS": {"location": str((tmp_path / "artifacts").resolve())}}
    assert artifact_storage(GPT_STORE_ARTIFACTS_STORAGE="storages.backends.s3.S3Storage",
                            GPT_STORE_ARTIFACTS_STORAGE_OPTIONS='{"bucket_name": "models"}') == {
        "BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": {"bucket_name": "models"}}


def test_a_manifest_naming_a_file_outside_its_folder_is_refused(db, machines):
    folder = machines["storage"] / "tuned/1/evil"
    folder.mkdir(parents=True)
    (folder / artifacts.MANIFEST).write_text(json.dumps({"files": [{"path": "../../x", "size": 1, "sha256": ""}]}))
    with pytest.raises(artifacts.ArtifactMissing, match="lists a file outside its folder"):
        artifacts.local_folder("tuned/1/evil")
    assert not (machines["inference-cache"].parent / "x").exists()


def test_a_folder_from_before_manifests_is_read_by_listing_without_its_merged_export(db, machines):
    folder = machines["storage"] / "tuned/1/old"
    (folder / "merged").mkdir(parents=True)
    (folder / "adapter_config.json").write_text("{}")
    (folder / "merged" / "config.json").write_text("{}")
    fetched = artifacts.local_folder("tuned/1/old")
    assert sorted(path.name for path in fetched.rglob("*")) == ["adapter_config.json"]
    assert [item.path for item in artifacts.files("tuned/1/old/merged")] == ["config.json"]


def test_a_model_whose_weights_cannot_be_published_fails_its_job_and_leaves_no_row_behind(alice, tiny_encoder_base,
                                                                                          machines):
    from store.models import TunedModel

    full = OSError(28, "No space left on device", "tuned/1/x/adapter_model.safetensors")
    with mock.patch("store.artifacts.publish_folder", side_effect=full), pytest.raises(AssertionError):
        train_tiny_sentiment(alice.organization, tiny_encoder_base, method="lora")  # asserts the job succeeded
    job = alice.organization.finetune_jobs.get()
    assert job.status == "failed" and "No space left on device" in job.error_message
    assert not TunedModel.objects.filter(organization=alice.organization).exists()  # no model without weights
