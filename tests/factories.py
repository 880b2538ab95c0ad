"""Small builders shared by tests (through the real model classes and actions)."""

from store.models import TunedModel


def make_tuned(organization, base, suffix="faq", task="dialogue", method="lora", labels=None) -> TunedModel:
    version = TunedModel.objects.filter(organization=organization, base=base, suffix=suffix).count() + 1
    return TunedModel.objects.create(organization=organization, base=base, task=task, method=method, suffix=suffix,
                                     version=version, slug=f"{suffix}-v{version}", name=suffix.title(),
                                     labels=labels or [], default_system_prompt="You are Acme's assistant.")


def bearer(key: str) -> dict:
    return {"HTTP_AUTHORIZATION": f"Bearer {key}"}
