from __future__ import annotations

from django import forms

from core.bounds import MAX_TOKENS, REQUESTS_PER_MINUTE, TOKENS_PER_MINUTE
from store.models import Deployment


class DeploymentForm(forms.Form):
    name = forms.CharField(max_length=120)
    slug = forms.SlugField(max_length=60, required=False,
                           help_text="The model id your developers use in /v1; made from the name when left empty.")
    model = forms.ChoiceField(label="Model", help_text="A tuned version, or a catalog base model.")
    system_prompt = forms.CharField(widget=forms.Textarea(attrs={"rows": 6}), required=False,
                                    help_text="Always sent first (dialogue models).")
    temperature = forms.FloatField(min_value=0, max_value=2, initial=0.3)
    top_p = forms.FloatField(min_value=0.01, max_value=1, initial=1.0)
    max_tokens = forms.IntegerField(**MAX_TOKENS.form(), initial=256)

    def __init__(self, *args, organization=None, editing: Deployment | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        from store.models import FoundationModel, TunedModel

        tuned = [(t.slug, f"{t.name} v{t.version} — {t.task}, {t.get_method_display()} ({t.slug})")
                 for t in TunedModel.objects.filter(organization=organization).select_related("base")]
        bases = [(b.slug, f"{b.display_name} (base, untuned)") for b in FoundationModel.objects.filter(
            supports_dialogue=True)]
        choices = [("Your tuned models", tuned), ("Catalog", bases)]
        if organization is not None:
            from store.deploy import granted_tuned_ids

            # Models other organizations published and this one installed, by short id (slugs may clash).
            installed = [(t.short_id, f"{t.name} v{t.version} — {t.task}, by {t.organization.name}")
                         for t in TunedModel.objects.filter(pk__in=granted_tuned_ids(organization)).select_related(
                             "organization")]
            if installed:
                choices.insert(1, ("Installed from the marketplace", installed))
            from upstreams.models import UpstreamModel

            hosted = [(u.reference, f"{u.name} — dialogue, hosted ({u.model_name})")
                      for u in UpstreamModel.objects.filter(organization=organization)]
            if hosted:
                choices.insert(1, ("Hosted models (your upstreams)", hosted))
        self.fields["model"].choices = choices  # type: ignore[attr-defined]
        if editing is not None:
            self.fields["slug"].disabled = True


class ApiKeyForm(forms.Form):
    name = forms.CharField(max_length=80, initial="Production")
    deployments = forms.ModelMultipleChoiceField(Deployment.objects.none(), required=False,
                                                 widget=forms.CheckboxSelectMultiple,
                                                 help_text="Leave all unticked to allow every deployment and model.")
    requests_per_minute = forms.IntegerField(**REQUESTS_PER_MINUTE.form(), initial=120)
    tokens_per_minute = forms.IntegerField(**TOKENS_PER_MINUTE.form(), initial=40_000)

    def __init__(self, *args, organization=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["deployments"].queryset = Deployment.objects.filter(organization=organization)
