import pytest
from channels.testing import WebsocketCommunicator
from django.urls import reverse

from finetune import jobs
from finetune.models import FineTuneJob


def test_it_starts_a_job_from_the_form(alice, sentiment_dataset, tiny_encoder_base):
    response = alice.client.post(reverse("finetune:job_new"), {
        "base": tiny_encoder_base.slug, "dataset": sentiment_dataset.pk, "method": "lora", "suffix": "moods",
        "epochs": 2})
    job = FineTuneJob.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("finetune:job_detail", args=[job.public_id])
    assert (job.method, job.hyperparameters["epochs"], job.status) == ("lora", 2, "queued")


def test_it_shows_invalid_combinations_as_form_errors(alice, sentiment_dataset, tiny_encoder_base):
    response = alice.client.post(reverse("finetune:job_new"), {
        "base": tiny_encoder_base.slug, "dataset": sentiment_dataset.pk, "method": "lora", "lora_r": 0})
    assert response.status_code == 200  # the form's own min_value check
    assert "Ensure this value is greater than or equal to 1" in response.content.decode()
    response = alice.client.post(reverse("finetune:job_new"), {
        "base": tiny_encoder_base.slug, "dataset": sentiment_dataset.pk, "method": "full", "learning_rate": 0.9,
        "batch_size": 0})
    assert not FineTuneJob.objects.exists()


def test_it_shows_recommended_hyperparameters(alice, sentiment_dataset, tiny_encoder_base):
    response = alice.client.get(reverse("finetune:job_defaults"),
                                {"base": tiny_encoder_base.slug, "dataset": sentiment_dataset.pk})
    page = response.content.decode()
    assert "Blank fields use the recommended value" in page
    assert 'placeholder="' in page


def test_it_does_not_offer_another_organizations_dataset(alice, charlie_dataset, tiny_encoder_base):
    response = alice.client.post(reverse("finetune:job_new"), {
        "base": tiny_encoder_base.slug, "dataset": charlie_dataset.pk})
    assert "Select a valid choice" in response.content.decode()
    assert "Charlie secrets" not in response.content.decode()
    assert not FineTuneJob.objects.exists()
    # Alice has no dataset of her own: the form points her to an upload or the bundled example.
    page = alice.client.get(reverse("finetune:job_new")).content.decode()
    assert "No dataset yet" in page and f'{reverse("finetune:dataset_upload")}#examples' in page
    assert 'id="examples"' in alice.client.get(reverse("finetune:dataset_upload")).content.decode()


def _selected(page: str, name: str) -> list[str]:
    """The values of the options selected in the form's <select name=…> (not the blank "---------")."""
    import re

    select = re.search(rf'<select name="{name}".*?</select>', page, re.S).group(0)
    return re.findall(r'<option value="([^"]+)"[^>]*selected', select)


def test_the_form_picks_the_only_base_model_that_fits_the_dataset(alice, sentiment_dataset, tiny_encoder_base,
                                                                   tiny_chat_base):
    from finetune.datasets import create_dataset

    chats = "\n".join(f'{{"messages": [{{"role": "user", "content": "size {n}?"}}, '
                       f'{{"role": "assistant", "content": "Yes, size {n}."}}]}}' for n in range(5, 11))
    dialogue = create_dataset(alice.organization, chats.encode(), "sizes.jsonl").dataset
    page = alice.client.get(reverse("finetune:job_new"), {"dataset": dialogue.pk}).content.decode()
    # Only the chat model tunes dialogue: chosen, with its recommended values shown.
    assert _selected(page, "base") == ["tiny-chat"] and _selected(page, "dataset") == [str(dialogue.pk)]
    assert "Blank fields use the recommended value" in page
    # Both models tune sentiment: the person picks.
    page = alice.client.get(reverse("finetune:job_new"), {"dataset": sentiment_dataset.pk}).content.decode()
    assert _selected(page, "base") == [] and _selected(page, "dataset") == [str(sentiment_dataset.pk)]
    # From a model's page: the organization's only dataset the model can learn from.
    page = alice.client.get(reverse("finetune:job_new"), {"base": "tiny-chat"}).content.decode()
    assert _selected(page, "base") == ["tiny-chat"] and _selected(page, "dataset") == []  # two fit
    page = alice.client.get(reverse("finetune:job_new"), {"base": "tiny-encoder"}).content.decode()
    assert _selected(page, "dataset") == [str(sentiment_dataset.pk)]


def test_it_shows_the_live_job_page(alice, sentiment_dataset, tiny_encoder_base):
    job = jobs.create_job(alice.organization, tiny_encoder_base, sentiment_dataset, suffix="moods")
    page = alice.client.get(reverse("finetune:job_detail", args=[job.public_id])).content.decode()
    assert "Job queued" in page
    assert f'data-live-socket="/ws/finetune/jobs/{job.public_id}/"' in page
    assert '<div id="loss-chart"><p class="empty chart-empty">No data yet</p></div>' in page  # filled live


def test_it_cancels_from_the_page(alice, sentiment_dataset, tiny_encoder_base):
    job = jobs.create_job(alice.organization, tiny_encoder_base, sentiment_dataset, suffix="moods")
    alice.client.post(reverse("finetune:job_cancel", args=[job.public_id]))
    job.refresh_from_db()
    assert job.status == "cancelled"


def test_the_live_region_offers_delete_and_deploy_once_the_job_has_finished(alice, sentiment_dataset,
                                                                           tiny_encoder_base):
    from tests.factories import make_tuned

    job = jobs.create_job(alice.organization, tiny_encoder_base, sentiment_dataset, suffix="moods")
    live = reverse("finetune:job_live", args=[job.public_id])
    region = alice.client.get(live).content.decode()
    assert 'id="cancel-job"' in region and 'id="delete-job"' not in region
    # The worker finishes it while the page is open: the region the page re-fetches has no Cancel any more.
    tuned = make_tuned(alice.organization, tiny_encoder_base, suffix="moods", task="sentiment")
    FineTuneJob.objects.filter(pk=job.pk).update(status="succeeded", tuned_model=tuned)
    region = alice.client.get(live).content.decode()
    assert 'id="cancel-job"' not in region and 'id="delete-job"' in region
    deploy = f'{reverse("store:deployment_new")}?model={tuned.slug}'
    assert f'href="{deploy}" id="deploy-tuned"' in region
    tuned_page = alice.client.get(reverse("store:tuned_detail", args=[tuned.short_id])).content.decode()
    assert f'id="deploy-tuned" href="{deploy}"' in tuned_page
    form = alice.client.get(deploy).content.decode()
    assert f'<option value="{tuned.slug}" selected>' in form
    # A Cancel pressed on a page loaded before the end says so and changes nothing.
    response = alice.client.post(reverse("finetune:job_cancel", args=[job.public_id]), follow=True)
    assert "The job had already finished: succeeded." in response.content.decode()
    job.refresh_from_db()
    assert job.status == "succeeded" and not job.cancel_requested


def test_it_hides_jobs_from_outsiders(alice, charlie, sentiment_dataset, tiny_encoder_base):
    job = jobs.create_job(alice.organization, tiny_encoder_base, sentiment_dataset, suffix="moods")
    for name in ("finetune:job_detail", "finetune:job_live"):
        assert charlie.client.get(reverse(name, args=[job.public_id])).status_code == 404
    assert charlie.client.post(reverse("finetune:job_cancel", args=[job.public_id])).status_code == 404
    job.refresh_from_db()
    assert job.status == "queued"
    assert "moods" not in charlie.client.get(reverse("finetune:job_list_partial")).content.decode()


@pytest.mark.django_db(transaction=True)
def test_the_job_socket_admits_the_owner_and_refuses_outsiders(alice, charlie, sentiment_dataset, tiny_encoder_base):
    from asgiref.sync import async_to_sync

    from finetune.consumers import JobUpdatesConsumer

    job = jobs.create_job(alice.organization, tiny_encoder_base, sentiment_dataset, suffix="moods")

    async def attempt(user):
        communicator = WebsocketCommunicator(JobUpdatesConsumer.as_asgi(), f"/ws/finetune/jobs/{job.public_id}/")
        communicator.scope["user"] = user
        communicator.scope["url_route"] = {"kwargs": {"public_id": job.public_id}}
        connected, code = await communicator.connect()
        if connected:
            await communicator.disconnect()
        return connected, code

    assert async_to_sync(attempt)(alice.user)[0] is True
    assert async_to_sync(attempt)(charlie.user) == (False, 4403)


def test_it_refuses_a_checkpoint_interval_beyond_its_bound(alice, sentiment_dataset, tiny_encoder_base):
    response = alice.client.post(reverse("finetune:job_new"), {
        "base": tiny_encoder_base.slug, "dataset": sentiment_dataset.pk, "method": "lora",
        "checkpoint_every_steps": 10**30})
    assert response.status_code == 200
    assert "Ensure this value is less than or equal to 1000000" in response.content.decode()
    assert not FineTuneJob.objects.exists()
