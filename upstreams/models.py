"""Hosted models: an organization's OpenAI-compatible upstream (a GPT-4-class service, vLLM, Ollama, llama.cpp,
another GPT Store) served as one of its dialogue models. The API key is stored encrypted (upstreams/secrets.py)
and shown only by its prefix."""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class UpstreamModel(models.Model):
    organization_path = "organization"

    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="upstreams")
    name = models.CharField(max_length=120, help_text="What your team sees in the catalog and the deployment form.")
    base_url = models.URLField(max_length=500, help_text=(
        "The server's OpenAI-compatible root, e.g. https://api.example.com/v1 (we call <base_url>/chat/completions)."))
    model_name = models.CharField(max_length=200, help_text="The `model` sent upstream.")
    api_key_encrypted = models.TextField(blank=True, editable=False)
    api_key_prefix = models.CharField(max_length=20, blank=True, editable=False)
    created_by = models.ForeignKey("auth.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["organization", "name"], name="upstream_name_unique_in_org")]

    def __str__(self) -> str:
        return f"{self.name} ({self.model_name} upstream)"

    @property
    def reference(self) -> str:
        """Its value in the deployment form's model choices (store.deploy.find_model resolves it)."""
        return f"upstream:{self.pk}"
