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


# Distinct messages (near-duplicates would be grouped into one split part and starve the test split).
SENTIMENT_ROWS = [
    ("I love these shoes, thank you", "positive"), ("Great service and fast delivery", "positive"),
    ("The boots are so comfortable, best purchase this year", "positive"), ("Thanks, the refund arrived", "positive"),
    ("Your support team was wonderful", "positive"), ("Perfect fit, I will order again", "positive"),
    ("Delivery came a day early, brilliant", "positive"), ("Happy with the exchange, cheers", "positive"),
    ("Lovely colours and good quality", "positive"), ("Amazing sandals for the price", "positive"),
    ("My order is late and nobody answers", "negative"), ("The boots broke after one day", "negative"),
    ("I was charged twice, fix this now", "negative"), ("Worst customer service ever", "negative"),
    ("The parcel arrived damaged", "negative"), ("Still waiting for my refund after a month", "negative"),
    ("These hurt my feet, awful", "negative"), ("Wrong size sent again, ridiculous", "negative"),
    ("Your website keeps crashing at checkout", "negative"), ("Terrible quality, the sole peeled off", "negative"),
    ("Where can I find the size guide", "neutral"), ("Do you ship to Canada", "neutral"),
    ("How do I change my delivery address", "neutral"), ("What payment methods do you take", "neutral"),
    ("Is the trail runner available in size 10", "neutral"), ("When do you restock the black boots", "neutral"),
    ("Can I use two gift cards on one order", "neutral"), ("What are your opening hours", "neutral"),
    ("Do you have wide fit options", "neutral"), ("How long is the warranty", "neutral"),
]


def sentiment_csv_bytes() -> bytes:
    return ("text,label\n" + "\n".join(f'"{text}",{label}' for text, label in SENTIMENT_ROWS) + "\n").encode()


def train_tiny_sentiment(organization, tiny_encoder_base, suffix: str = "moods", method: str | None = None,
                         **overrides):
    """A real (tiny) tuned sentiment model, trained in this process through the same runner as the worker."""
    from finetune import jobs
    from finetune.datasets import create_dataset
    from finetune.runner import run_job

    dataset = create_dataset(organization, sentiment_csv_bytes(), "moods.csv").dataset
    job = jobs.create_job(organization, tiny_encoder_base, dataset, suffix=suffix, enqueue=False, method=method,
                          overrides={"epochs": 2, "batch_size": 8, **overrides})
    job = run_job(job.pk, "test-runner")
    assert job.status == "succeeded", job.error_message
    return job.tuned_model


def live_user(email: str, password: str, name: str = ""):
    """A user who signs in through the live stack's login page (its processes hash with PBKDF2)."""
    from django.contrib.auth.hashers import make_password

    from accounts import people

    user = people.create_user(email, password, name)
    user.password = make_password(password, hasher="pbkdf2_sha256")
    user.save(update_fields=["password"])
    return user
