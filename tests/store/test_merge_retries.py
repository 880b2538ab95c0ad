"""Merge and export survives a worker that dies: the page and the reaper queue it again, exactly once."""

from datetime import timedelta
from unittest import mock

import pytest
from django.urls import reverse
from django.utils import timezone

from finetune.tasks import merge_tuned_model, reap_stale_jobs
from store.merging import MERGE_ATTEMPTS
from store.models import TunedModel
from store.tuned import artifact_folder
from tests.factories import train_tiny_sentiment


@pytest.fixture
def lora_moods(alice, tiny_encoder_base):
    return train_tiny_sentiment(alice.organization, tiny_encoder_base, method="lora")


def left_by_a_dead_worker(tuned: TunedModel, status: str, attempts: int = 1) -> None:
    """What a worker killed mid-merge leaves behind: in progress, heartbeat long stopped."""
    TunedModel.objects.filter(pk=tuned.pk).update(
        merged_status=status, merge_attempts=attempts,
        merge_heartbeat_at=timezone.now() - timedelta(hours=1))


@pytest.mark.parametrize("status", ["pending", "running"])
def test_it_lets_the_owner_queue_again_a_merge_left_by_a_dead_worker(alice, lora_moods, status):
    left_by_a_dead_worker(lora_moods, status)
    url = reverse("store:tuned_detail", args=[lora_moods.short_id])
    assert "Merge again" in alice.client.get(url).content.decode()
    response = alice.client.post(reverse("store:tuned_merge", args=[lora_moods.short_id]))
    assert response.status_code == 302  # the (eager, in tests) worker task merged it
    lora_moods.refresh_from_db()
    assert lora_moods.merged_status == "ready", lora_moods.merged_error
    assert (artifact_folder(lora_moods) / "merged" / "config.json").exists()


def test_it_does_not_queue_a_second_merge_while_one_is_alive(alice, lora_moods):
    beat = timezone.now()
    TunedModel.objects.filter(pk=lora_moods.pk).update(merged_status="running", merge_heartbeat_at=beat)
    assert "Merge again" not in alice.client.get(
        reverse("store:tuned_detail", args=[lora_moods.short_id])).content.decode()
    with mock.patch("finetune.exports._merge") as merge:
        response = alice.client.post(reverse("store:tuned_merge", args=[lora_moods.short_id]), follow=True)
    assert "already queued or running" in response.content.decode()
    merge.assert_not_called()
    lora_moods.refresh_from_db()
    assert (lora_moods.merged_status, lora_moods.merge_heartbeat_at) == ("running", beat)


def test_the_reaper_queues_again_a_merge_whose_worker_died_and_it_completes(lora_moods):
    left_by_a_dead_worker(lora_moods, "running")
    reap_stale_jobs()
    lora_moods.refresh_from_db()
    assert lora_moods.merged_status == "ready", lora_moods.merged_error
    assert lora_moods.merge_attempts == 2 and lora_moods.merge_heartbeat_at is None


def test_the_reaper_leaves_a_merge_with_a_live_heartbeat_alone(lora_moods):
    TunedModel.objects.filter(pk=lora_moods.pk).update(merged_status="running", merge_heartbeat_at=timezone.now())
    with mock.patch("finetune.exports._merge") as merge:
        reap_stale_jobs()
    merge.assert_not_called()
    assert TunedModel.objects.get(pk=lora_moods.pk).merged_status == "running"


def test_the_reaper_gives_up_on_a_merge_that_kills_its_worker_every_time(alice, lora_moods):
    left_by_a_dead_worker(lora_moods, "running", attempts=MERGE_ATTEMPTS)
    with mock.patch("finetune.exports._merge") as merge:
        reap_stale_jobs()
    merge.assert_not_called()
    lora_moods.refresh_from_db()
    assert lora_moods.merged_status == "failed"
    assert f"{MERGE_ATTEMPTS} times in a row" in lora_moods.merged_error
    page = alice.client.get(reverse("store:tuned_detail", args=[lora_moods.short_id])).content.decode()
    assert "Merge and export" in page  # the button is back


@pytest.mark.parametrize("status", ["ready", "running", "failed", ""])
def test_a_redelivered_merge_task_does_nothing_unless_the_merge_is_queued(lora_moods, status):
    TunedModel.objects.filter(pk=lora_moods.pk).update(merged_status=status, merge_heartbeat_at=timezone.now())
    with mock.patch("finetune.exports._merge") as merge:
        merge_tuned_model.delay(lora_moods.pk)
    merge.assert_not_called()
    assert TunedModel.objects.get(pk=lora_moods.pk).merged_status == status


def test_a_merge_that_cannot_write_its_folder_fails_with_the_path(lora_moods):
    TunedModel.objects.filter(pk=lora_moods.pk).update(merged_status="pending")
    blocked = artifact_folder(lora_moods) / "merged.partial"
    denied = PermissionError(13, "Permission denied", str(blocked))
    with mock.patch("workers.training.export.merge_and_export", side_effect=denied):
        merge_tuned_model.delay(lora_moods.pk)
    lora_moods.refresh_from_db()
    assert lora_moods.merged_status == "failed"
    assert lora_moods.merged_error == f"Cannot write the merged model to {blocked}: Permission denied."
