"""The marketplace storefront: search across name, summary, task, base and language; sort."""

from __future__ import annotations

from django.db.models import F, Q, QuerySet

from market.listings import public_listings
from market.models import Listing
from store.models import Task

SORTS = {
    "newest": ("-created_at", "-pk"),
    "rating": (F("rating_average").desc(), "-rating_count", "-created_at"),
    "installs": ("-install_count", "-created_at"),
}
QUERY_CHARS = 100


def search(query: str = "", task: str = "", sort: str = "newest") -> QuerySet[Listing]:
    listings = public_listings().select_related("organization", "base")
    query = query.strip()[:QUERY_CHARS]
    for word in query.split():
        task_names = [value for value, label in Task.choices if word.lower() in label.lower()]
        listings = listings.filter(
            Q(title__icontains=word) | Q(slug__icontains=word) | Q(summary__icontains=word)
            | Q(task__in=task_names) | Q(base__display_name__icontains=word) | Q(base__slug__icontains=word)
            | Q(languages__icontains=word))
    if task in Task.values:
        listings = listings.filter(task=task)
    return listings.order_by(*SORTS.get(sort, SORTS["newest"]))
