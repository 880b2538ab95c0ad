from __future__ import annotations

from typing import Any

from django import forms

from core.bounds import BATCH_SIZE, CHECKPOINT_EVERY_STEPS, EPOCHS, SEED, Bound
from finetune.models import Dataset
from store.models import FoundationModel, Method, Task


def bounded_integer(bound: Bound, **kwargs: Any) -> forms.IntegerField:
    """An integer field that refuses what `bound` refuses, with its numbers from core/bounds.py."""
    options: dict[str, Any] = {**bound.form(), **kwargs}
    return forms.IntegerField(**options)


class DatasetUploadForm(forms.Form):
    file = forms.FileField(help_text="JSONL (chat, text/label or query/passage) or CSV (text,label or "
                                     "query,passage). UTF-8.")
    name = forms.CharField(max_length=120, required=False, help_text="Defaults to the file name.")
    task = forms.ChoiceField(choices=[("", "Detect from the file"), *Task.choices], required=False)
    token_stats_base = forms.ModelChoiceField(
        FoundationModel.objects.all(), required=False, label="Count tokens with",
        help_text="Token-length statistics with this model's tokenizer (computed by a worker).")
    train_percent = forms.IntegerField(min_value=1, max_value=98, initial=80, label="Train %")
    validation_percent = forms.IntegerField(min_value=1, max_value=98, initial=10, label="Validation %")
    test_percent = forms.IntegerField(min_value=1, max_value=98, initial=10, label="Test %")
    seed = bounded_integer(SEED, initial=42, help_text="The same seed always gives the same split.")

    def clean(self):
        data = super().clean()
        parts = [data.get("train_percent"), data.get("validation_percent"), data.get("test_percent")]
        if None not in parts and sum(parts) != 100:
            raise forms.ValidationError(
                f"Train, validation and test must add up to 100% (they add up to {sum(parts)}%).")
        return data

    @property
    def ratios(self) -> tuple[float, float, float]:
        data = self.cleaned_data
        return (data["train_percent"] / 100, data["validation_percent"] / 100, data["test_percent"] / 100)


class ResplitForm(forms.Form):
    train_percent = forms.IntegerField(min_value=1, max_value=98)
    validation_percent = forms.IntegerField(min_value=1, max_value=98)
    test_percent = forms.IntegerField(min_value=1, max_value=98)
    seed = bounded_integer(SEED)


HYPERPARAMETER_FIELDS = {
    "epochs": bounded_integer(EPOCHS, required=False),
    "learning_rate": forms.FloatField(min_value=1e-7, max_value=1.0, required=False),
    "batch_size": bounded_integer(BATCH_SIZE, required=False),
    "gradient_accumulation": forms.IntegerField(min_value=1, max_value=128, required=False),
    "max_seq_length": forms.IntegerField(min_value=16, max_value=32768, required=False),
    "warmup_ratio": forms.FloatField(min_value=0, max_value=0.5, required=False),
    "weight_decay": forms.FloatField(min_value=0, max_value=1, required=False),
    "lora_r": forms.IntegerField(min_value=1, max_value=256, required=False, label="LoRA r"),
    "lora_alpha": forms.IntegerField(min_value=1, max_value=1024, required=False, label="LoRA alpha"),
    "lora_dropout": forms.FloatField(min_value=0, max_value=0.9, required=False, label="LoRA dropout"),
    "num_virtual_tokens": forms.IntegerField(min_value=1, max_value=256, required=False,
                                             label="Virtual tokens (prefix tuning)"),
    "seed": bounded_integer(SEED, required=False),
    "early_stopping_patience": forms.IntegerField(min_value=1, max_value=100, required=False,
                                                  label="Early-stopping patience (evaluations)"),
    "checkpoint_every_steps": bounded_integer(CHECKPOINT_EVERY_STEPS, required=False),
}


class JobForm(forms.Form):
    base = forms.ModelChoiceField(FoundationModel.objects.all(), label="Base model", to_field_name="slug")
    dataset = forms.ModelChoiceField(Dataset.objects.none())
    method = forms.ChoiceField(choices=[("", "Recommended for this model"), *Method.choices], required=False)
    suffix = forms.SlugField(max_length=40, required=False,
                             help_text="Names the tuned model (e.g. acme-faq); each run adds a version.")
    target_modules = forms.CharField(required=False, help_text="Comma-separated module names (LoRA family).")

    def __init__(self, *args, organization=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["dataset"].queryset = Dataset.objects.filter(organization=organization)
        for name, field in HYPERPARAMETER_FIELDS.items():
            self.fields[name] = field.__class__(**{
                "required": False, "label": field.label,
                **{k: getattr(field, k) for k in ("min_value", "max_value") if getattr(field, k, None) is not None},
            })

    def overrides(self) -> dict:
        values = {name: self.cleaned_data.get(name) for name in HYPERPARAMETER_FIELDS}
        modules = [m.strip() for m in self.cleaned_data.get("target_modules", "").split(",") if m.strip()]
        if modules:
            values["target_modules"] = modules
        return {k: v for k, v in values.items() if v is not None}
