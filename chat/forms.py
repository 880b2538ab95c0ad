from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError

from chat.models import CannedReply, Widget
from chat.widgets import normalize_origin
from store.models import Deployment, Task


class WidgetForm(forms.ModelForm):
    allowed_origins_text = forms.CharField(
        label="Allowed website origins", required=False, widget=forms.Textarea(attrs={"rows": 3}),
        help_text="One per line, e.g. https://shop.example — only these sites can embed the widget.")
    handoff_phrases_text = forms.CharField(
        label="Phrases that ask for a human", required=False, widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Comma-separated, in your customers' language. Empty: agent, human, person, representative, …")

    class Meta:
        model = Widget
        fields = ["deployment", "sentiment_deployment", "title", "greeting", "color", "position", "require_identity",
                  "negative_streak", "score_threshold"]
        widgets = {"color": forms.TextInput(attrs={"type": "color"})}

    def __init__(self, *args, organization=None, **kwargs):
        super().__init__(*args, **kwargs)
        deployments = Deployment.objects.filter(organization=organization)
        dialogue = deployments.filter(task=Task.DIALOGUE)
        self.dialogue_deployments = dialogue
        self.fields["deployment"].queryset = dialogue
        if not self.instance.pk and not self.is_bound:
            only = list(dialogue[:2])
            if len(only) == 1:  # nothing to choose: the organization's one bot is the answer
                self.fields["deployment"].initial = only[0].pk
        self.fields["sentiment_deployment"].queryset = deployments.filter(task=Task.SENTIMENT)
        self.fields["sentiment_deployment"].empty_label = "The organization's default sentiment deployment"
        if self.instance.pk:
            self.fields["allowed_origins_text"].initial = "\n".join(self.instance.allowed_origins)
            self.fields["handoff_phrases_text"].initial = ", ".join(self.instance.handoff_phrases)

    def clean_allowed_origins_text(self) -> list[str]:
        origins = []
        for line in self.cleaned_data["allowed_origins_text"].splitlines():
            if line.strip():
                try:
                    origins.append(normalize_origin(line))
                except ValidationError:
                    raise ValidationError(f"{line.strip()!r} is not an origin like https://shop.example") from None
        return sorted(set(origins))

    def clean_handoff_phrases_text(self) -> list[str]:
        return [p.strip() for p in self.cleaned_data["handoff_phrases_text"].split(",") if p.strip()]

    def clean_score_threshold(self) -> float:
        value = self.cleaned_data["score_threshold"]
        if not -1 <= value <= 1:
            raise ValidationError("The threshold is on a -1 (negative) .. +1 (positive) scale.")
        return value

    def save(self, commit: bool = True) -> Widget:
        self.instance.allowed_origins = self.cleaned_data["allowed_origins_text"]
        self.instance.handoff_phrases = self.cleaned_data["handoff_phrases_text"]
        return super().save(commit)


class CannedReplyForm(forms.ModelForm):
    class Meta:
        model = CannedReply
        fields = ["title", "text"]
        widgets = {"text": forms.Textarea(attrs={"rows": 3})}
