"""A job run end to end in this process through the same runner the training worker uses."""

from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from finetune import jobs
from finetune.datasets import create_dataset
from finetune.models import FineTuneJob, JobCheckpoint, JobEvent
from finetune.runner import run_job
from store.tuned import artifact_folder
from tests.factories import sentiment_csv_bytes, train_tiny_sentiment

FAQ = [("How long is shipping?", "Standard shipping takes 3 to 5 business days."),
       ("Do you ship to Canada?", "Yes, we ship to the US and Canada."),
       ("What is your return window?", "You can return unworn shoes within 30 days."),
       ("Can I exchange a size?", "Yes, exchanges are free, once per order."),
       ("Which cards do you take?", "Visa, Mastercard, American Express and PayPal."),
       ("When are you open?", "Monday to Friday, 8 am to 8 pm Eastern."),
       ("Is there a warranty?", "One year against manufacturing defects."),
       ("How do I track my parcel?", "Use the tracking link in your shipping email."),
       ("Do gift cards expire?", "No, Acme gift cards never expire."),
       ("What sizes do you carry?", "Men 6 to 15 and women 5 to 12, with half sizes."),
       ("How much is express delivery?", "Express delivery costs $12.95."),
       ("Can I cancel my order?", "Yes, within one hour of ordering.")]


def dialogue_jsonl() -> bytes:
    import json

    lines = [json.dumps({"messages": [{"role": "system", "content": "You are Acme's assistant."},
                                      {"role": "user", "content": question},
                                      {"role": "assistant", "content": answer}]}) for question, answer in FAQ]
    return ("\n".join(lines) + "\n").encode()


def test_a_sentiment_job_produces_an_evaluated_versioned_model(alice, tiny_encoder_base):
    first = train_tiny_sentiment(alice.organization, tiny_encoder_base)
    job = FineTuneJob.objects.get(tuned_model=first)
    assert job.status == "succeeded" and job.current_step == job.total_steps > 0
    assert first.slug == "moods-v1" and first.version == 1 and first.labels == ["negative", "neutral", "positive"]
    folder = artifact_folder(first)
    assert (folder / "model.safetensors").exists() or (folder / "adapter_model.safetensors").exists()
    assert not list(folder.rglob("*.bin")) and not list(folder.rglob("*.pt")) and not list(folder.rglob("*.pkl"))
    assert first.metrics["task"] == "sentiment" and "vader" in first.metrics["baselines"]
    assert "## Evaluation (test split)" in first.card_markdown and "VADER" in first.card_markdown.upper()
    assert f"({job.total_steps} optimizer steps)" in first.card_markdown
    assert f"({job.get_method_display()}): it classifies a text as one of" in first.card_markdown
    kinds = set(job.events.values_list("type", flat=True))
    assert kinds == {JobEvent.Type.MESSAGE, JobEvent.Type.METRICS}
    assert job.events.filter(message__startswith="Fine-tuning succeeded").exists()
    second = train_tiny_sentiment(alice.organization, tiny_encoder_base)
    assert (second.slug, second.version) == ("moods-v2", 2)


def test_a_dialogue_job_tunes_lora_and_keeps_the_trained_system_prompt(alice, tiny_chat_base):
    dataset = create_dataset(alice.organization, dialogue_jsonl(), "faq.jsonl").dataset
    job = jobs.create_job(alice.organization, tiny_chat_base, dataset, suffix="faq", enqueue=False,
                          overrides={"epochs": 2, "batch_size": 4, "max_seq_length": 96})
    job = run_job(job.pk, "test")
    assert job.status == "succeeded", job.error_message
    tuned = job.tuned_model
    assert tuned.method == "lora" and (artifact_folder(tuned) / "adapter_config.json").exists()
    assert tuned.metrics["task"] == "dialogue" and "base" in tuned.metrics["baselines"]
    assert tuned.default_system_prompt == "You are Acme's assistant."


def test_a_training_error_fails_the_job_with_a_readable_message(alice, tiny_encoder_base, monkeypatch):
    from workers.training.loop import TrainingError

    def fail(*args, **kwargs):
        raise TrainingError("Out of memory: lower the batch size or the maximum sequence length.")

    monkeypatch.setattr("workers.training.loop.run_training", fail)
    dataset = create_dataset(alice.organization, sentiment_csv_bytes(), "m.csv").dataset
    job = jobs.create_job(alice.organization, tiny_encoder_base, dataset, enqueue=False)
    job = run_job(job.pk, "test")
    assert job.status == "failed" and job.error_message.startswith("Out of memory")
    assert job.events.filter(level="error", message__contains="Out of memory").exists()


def test_an_unexpected_crash_never_leaves_the_job_running(alice, tiny_encoder_base, monkeypatch):
    monkeypatch.setattr("workers.training.loop.run_training", lambda *a, **k: 1 / 0)
    dataset = create_dataset(alice.organization, sentiment_csv_bytes(), "m.csv").dataset
    job = run_job(jobs.create_job(alice.organization, tiny_encoder_base, dataset, enqueue=False).pk, "test")
    assert job.status == "failed" and "ZeroDivisionError" in job.error_message


def test_a_shutdown_checkpoints_and_requeues(alice, tiny_encoder_base, monkeypatch,
                                             django_capture_on_commit_callbacks):
    from core.worker_lifecycle import shutdown_requested

    dataset = create_dataset(alice.organization, sentiment_csv_bytes(), "m.csv").dataset
    job = jobs.create_job(alice.organization, tiny_encoder_base, dataset, enqueue=False,
                          overrides={"epochs": 3, "batch_size": 4})
    shutdown_requested.set()
    try:
        with django_capture_on_commit_callbacks() as callbacks:
            job = run_job(job.pk, "test")
    finally:
        shutdown_requested.clear()
    assert job.status == "queued" and job.worker == ""
    assert JobCheckpoint.objects.filter(job=job).exists()
    assert Path(JobCheckpoint.objects.get(job=job).path).exists()
    assert callbacks, "the job is queued again for the next worker"
    resumed = run_job(job.pk, "test-2")
    assert resumed.status == "succeeded" and resumed.attempts == 2
    attempt = resumed.events.filter(message__startswith="Ran ").order_by("-pk").first().data
    assert attempt["steps_run"] == resumed.total_steps - attempt["resumed_from"]


def test_the_cli_trains_and_prints_the_slug_last(alice, tiny_encoder_base, tmp_path, capsys):
    data = tmp_path / "moods.csv"
    data.write_bytes(sentiment_csv_bytes())
    call_command("finetune", "--org", alice.organization.slug, "--base", "tiny-encoder", "--data", str(data),
                 "--task", "sentiment", "--epochs", "2", "--suffix", "cli-moods")
    out = capsys.readouterr()
    lines = out.out.strip().splitlines()
    assert lines[-1] == "cli-moods-v1"
    assert any(line.startswith("Evaluation:") for line in lines)
    assert "step" in out.err  # the progress bar goes to stderr, so stdout's last line stays the slug


def test_the_cli_reports_bad_data_with_line_numbers_and_stores_nothing(alice, tiny_encoder_base, tmp_path,
                                                                      capsys):
    data = tmp_path / "bad.csv"
    data.write_bytes(sentiment_csv_bytes() + b'"no label",\n')
    with pytest.raises(CommandError, match="not a valid sentiment dataset"):
        call_command("finetune", "--org", alice.organization.slug, "--base", "tiny-encoder", "--data", str(data),
                     "--task", "sentiment")
    bad_line = sentiment_csv_bytes().count(b"\n") + 1
    assert f"bad.csv: line {bad_line}: empty label" in capsys.readouterr().err
    assert not FineTuneJob.objects.exists()
