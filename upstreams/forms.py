from __future__ import annotations

from urllib.parse import urlsplit

from django import forms

from core.text import text_problem
from upstreams.models import UpstreamModel


class UpstreamForm(forms.ModelForm):
    base_url = forms.URLField(label="Base URL", max_length=500, assume_scheme="https",
                              help_text=UpstreamModel._meta.get_field("base_url").help_text)
    api_key = forms.CharField(label="API key", required=False, max_length=500, strip=True,
                              widget=forms.PasswordInput(render_value=False),
                              help_text="Stored encrypted; never shown again (only its first characters). Leave "
                                        "empty for servers without keys (a local vLLM, Ollama or llama.cpp).")

    class Meta:
        model = UpstreamModel
        fields = ["name", "base_url", "model_name"]
        help_texts = {"model_name": "The model id the server expects in its requests, e.g. gpt-4o-mini or llama3.1:8b."}

    def __init__(self, *args, organization=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.organization = organization

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        problem = text_problem(name)
        if problem:
            raise forms.ValidationError(problem)
        if UpstreamModel.objects.filter(organization=self.organization, name=name).exists():
            raise forms.ValidationError(f"You already have a hosted model called {name!r}.")
        return name

    def clean_base_url(self) -> str:
        url = self.cleaned_data["base_url"].strip()
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise forms.ValidationError("The base URL must start with http:// or https://.")
        if parts.query or parts.fragment or parts.username or parts.password:
            raise forms.ValidationError("The base URL takes no query, fragment or credentials (put the key in "
                                        "API key).")
        return url.rstrip("/")

    def clean_model_name(self) -> str:
        value = self.cleaned_data["model_name"].strip()
        problem = text_problem(value)
        if problem:
            raise forms.ValidationError(problem)
        return value

    def clean_api_key(self) -> str:
        key = self.cleaned_data["api_key"]
        if key and (text_problem(key) or any(c.isspace() for c in key)):
            raise forms.ValidationError("The API key must be one word of printable characters.")
        return key


class ReplaceKeyForm(forms.Form):
    api_key = UpstreamForm.base_fields["api_key"]

    clean_api_key = UpstreamForm.clean_api_key
