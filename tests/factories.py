"""Small builders shared by tests (through the real model classes and actions)."""

from store.models import TunedModel


def make_tuned(organization, base, suffix="faq", task="dialogue", method="lora", labels=None) -> TunedModel:
    version = TunedModel.objects.filter(organization=organization, base=base, suffix=suffix).count() + 1
    return TunedModel.objects.create(organization=organization, base=base, task=task, method=method, suffix=suffix,
                                     version=version, slug=f"{suffix}-v{version}", name=suffix.title(),
                                     labels=labels or [], default_system_prompt="You are Acme's assistant.")


def bearer(key: str) -> dict:
    return {"HTTP_AUTHORIZATION": f"Bearer {key}"}


def organization_with_key(name: str = "Live Shoes", **limits):
    """A fresh organization, its admin and an API key (plaintext), built with the real actions."""
    from accounts import people
    from store.api_keys import create_api_key

    user = people.create_user(f"owner@{name.lower().replace(' ', '-')}.example", "a-long-test-passphrase")
    organization = people.create_organization(name, user)
    _, key = create_api_key(organization, "live key", **limits)
    return organization, user, key


def deploy_tiny_bot(organization, tiny_chat_base, slug: str = "tiny-bot", max_tokens: int = 24):
    from store import deploy

    return deploy.create_or_update(organization, slug, deploy.ModelChoice(base=tiny_chat_base),
                                   system_prompt="You are a test bot.", temperature=0.0, max_tokens=max_tokens)


SENTIMENT_ROWS = [(f"{text} {i}", label) for i in range(4) for text, label in (
    ("I love these shoes, thank you", "positive"), ("Great service and fast delivery", "positive"),
    ("My order is late and nobody answers", "negative"), ("The boots broke after one day", "negative"),
    ("Where can I find the size guide", "neutral"), ("Do you ship to Canada", "neutral"))]


def sentiment_csv_bytes() -> bytes:
    return ("text,label\n" + "\n".join(f'"{text}",{label}' for text, label in SENTIMENT_ROWS) + "\n").encode()


def train_tiny_sentiment(organization, tiny_encoder_base, suffix: str = "moods", **overrides):
    """A real (tiny) tuned sentiment model, trained in this process through the same runner as the worker."""
    from finetune import jobs
    from finetune.datasets import create_dataset
    from finetune.runner import run_job

    dataset = create_dataset(organization, sentiment_csv_bytes(), "moods.csv").dataset
    job = jobs.create_job(organization, tiny_encoder_base, dataset, suffix=suffix, enqueue=False,
                          overrides={"epochs": 2, "batch_size": 8, **overrides})
    job = run_job(job.pk, "test-runner")
    assert job.status == "succeeded", job.error_message
    return job.tuned_model
