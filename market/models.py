"""The marketplace: listings of tuned models other organizations install, their versions and reviews.

A listing belongs to its publisher; an installation and a review belong to the installing organization.
An installer's deployment points at the publisher's TunedModel row (the store's grant hook allows it),
so every installing organization is served from the publisher's one artifact.
"""

from __future__ import annotations

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone

from store.models import FoundationModel, Task, TunedModel


class Listing(models.Model):
    organization_path = "organization"

    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="listings",
                                     help_text="The publisher")
    slug = models.SlugField(max_length=80, unique=True)
    title = models.CharField(max_length=120)
    summary = models.CharField(max_length=300)
    description = models.TextField(blank=True)
    task = models.CharField(max_length=20, choices=Task.choices)
    base = models.ForeignKey(FoundationModel, on_delete=models.PROTECT, related_name="listings")
    # Comma-separated language codes or names ("en, de"): searched as text.
    languages = models.CharField(max_length=200, blank=True)
    license = models.CharField(max_length=60)
    allow_weights_download = models.BooleanField(default=False, help_text="Installers may download the weights")
    published = models.BooleanField(default=True, help_text="Unpublished: no new installs; installs keep working")
    hidden = models.BooleanField(default=False, help_text="Hidden by an operator (abuse): as unpublished")
    hidden_reason = models.CharField(max_length=200, blank=True)
    # Kept by market/reviews.py and market/installs.py so the storefront sorts without aggregating.
    rating_average = models.FloatField(default=0)
    rating_count = models.PositiveIntegerField(default=0)
    install_count = models.PositiveIntegerField(default=0)
    created_by = models.ForeignKey("auth.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.title

    @property
    def is_public(self) -> bool:
        return self.published and not self.hidden

    @property
    def language_list(self) -> list[str]:
        return [part.strip() for part in self.languages.split(",") if part.strip()]

    def latest_version(self) -> ListingVersion | None:
        return self.versions.order_by("-number").first()


class ListingVersion(models.Model):
    organization_path = "listing__organization"

    listing = models.ForeignKey(Listing, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    # PROTECT: installers serve this row; the publisher cannot delete it from under them.
    tuned_model = models.ForeignKey(TunedModel, on_delete=models.PROTECT, related_name="listing_versions")
    changelog = models.TextField(blank=True)
    # The job's evaluation report as published (metrics and examples), copied so later edits stay apart.
    metrics = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-number"]
        constraints = [
            models.UniqueConstraint(fields=["listing", "number"], name="one_listing_version_number"),
            models.UniqueConstraint(fields=["listing", "tuned_model"], name="one_version_per_tuned_model"),
        ]

    def __str__(self) -> str:
        return f"{self.listing} v{self.number}"


class Installation(models.Model):
    """An organization's install of a listing; `version` is the one it deploys by default."""

    organization_path = "organization"

    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE,
                                     related_name="installations")
    listing = models.ForeignKey(Listing, on_delete=models.CASCADE, related_name="installations")
    version = models.ForeignKey(ListingVersion, on_delete=models.PROTECT, related_name="+")
    installed_by = models.ForeignKey("auth.User", null=True, blank=True, on_delete=models.SET_NULL,
                                     related_name="+")
    installed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-installed_at"]
        constraints = [models.UniqueConstraint(fields=["organization", "listing"], name="one_install_per_org")]

    def __str__(self) -> str:
        return f"{self.listing} in {self.organization}"


class Review(models.Model):
    organization_path = "organization"

    listing = models.ForeignKey(Listing, on_delete=models.CASCADE, related_name="reviews")
    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="reviews")
    rating = models.PositiveSmallIntegerField(validators=[MinValueValidator(1), MaxValueValidator(5)])
    text = models.TextField(blank=True, max_length=4000)
    author = models.ForeignKey("auth.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at"]
        constraints = [
            models.UniqueConstraint(fields=["listing", "organization"], name="one_review_per_org"),
            models.CheckConstraint(condition=models.Q(rating__gte=1, rating__lte=5), name="rating_1_to_5"),
        ]

    def __str__(self) -> str:
        return f"{self.rating}★ {self.listing}"
