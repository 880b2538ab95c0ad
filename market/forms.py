from __future__ import annotations

from django import forms

from core.bounds import TRY_IT_MESSAGE_CHARS
from market.models import Listing
from market.reviews import REVIEW_TEXT_CHARS
from store.models import TunedModel


def _tuned_choices(queryset) -> list[tuple[str, str]]:
    return [(t.short_id, f"{t.name} v{t.version} — {t.task}, {t.base.display_name} ({t.slug})")
            for t in queryset.select_related("base")]


class ListingForm(forms.Form):
    title = forms.CharField(max_length=120)
    summary = forms.CharField(max_length=300)
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 5}), required=False)
    languages = forms.CharField(max_length=200, required=False, help_text="Comma-separated, e.g. en, de")
    license = forms.CharField(max_length=60, initial="apache-2.0")
    allow_weights_download = forms.BooleanField(required=False, label="Installers may download the weights")


class PublishForm(ListingForm):
    tuned_model = forms.ChoiceField(label="Tuned model", help_text="Version 1 of the listing.")
    changelog = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False, initial="First version.")

    def __init__(self, *args, organization=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["tuned_model"].choices = _tuned_choices(  # type: ignore[attr-defined]
            TunedModel.objects.filter(organization=organization))


class VersionForm(forms.Form):
    tuned_model = forms.ChoiceField(label="Tuned model")
    changelog = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}))

    def __init__(self, *args, listing: Listing, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["tuned_model"].choices = _tuned_choices(  # type: ignore[attr-defined]
            TunedModel.objects.filter(organization=listing.organization, task=listing.task, base=listing.base)
            .exclude(listing_versions__listing=listing))


class DeployForm(forms.Form):
    slug = forms.SlugField(max_length=60, help_text="The model id your developers use in /v1.")
    name = forms.CharField(max_length=120, required=False)
    version = forms.TypedChoiceField(coerce=int, required=False, empty_value=None,
                                     help_text="Default: the installed version.")

    def __init__(self, *args, listing: Listing, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["version"].choices = [("", "installed version")] + [  # type: ignore[attr-defined]
            (v.number, f"v{v.number}") for v in listing.versions.all()]


class ReviewForm(forms.Form):
    rating = forms.TypedChoiceField(coerce=int, choices=[(n, f"{n} ★") for n in range(5, 0, -1)])
    text = forms.CharField(widget=forms.Textarea(attrs={"rows": 4}), required=False, max_length=REVIEW_TEXT_CHARS)


class TryItForm(forms.Form):
    message = forms.CharField(max_length=int(TRY_IT_MESSAGE_CHARS.high), strip=True)
