"""A new organization starts from a bundled example dataset: its own validated copy, in two clicks."""

import pytest
from django.urls import reverse

from finetune.examples import EXAMPLES, create_example_dataset
from finetune.models import Dataset

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("key", sorted(EXAMPLES))
def test_every_example_validates(alice, key):
    result = create_example_dataset(alice.organization, key)
    assert result.report.problems == [] and result.dataset is not None


def test_an_admin_copies_the_sentiment_example_into_their_organization(alice, bob, charlie):
    page = alice.client.get(reverse("finetune:dataset_upload")).content.decode()
    url = reverse("finetune:dataset_from_example", args=["support-sentiment"])
    assert f'action="{url}"' in page
    response = alice.client.post(url)
    dataset = Dataset.objects.get(organization=alice.organization)
    assert response.status_code == 302 and response["Location"] == reverse("finetune:dataset_detail",
                                                                           args=[dataset.public_id])
    assert (dataset.task, dataset.row_count, sorted(dataset.labels)) == (
        "sentiment", 1357, ["negative", "neutral", "positive"])
    # Each organization gets its own copy; nobody sees another's.
    charlie.client.post(url)
    assert Dataset.objects.filter(organization=charlie.organization).count() == 1
    assert charlie.client.get(reverse("finetune:dataset_detail", args=[dataset.public_id])).status_code == 404


def test_agents_unknown_examples_and_gets_are_refused_and_store_nothing(alice, bob):
    url = reverse("finetune:dataset_from_example", args=["support-sentiment"])
    assert bob.client.post(url).status_code == 403
    assert alice.client.post(reverse("finetune:dataset_from_example", args=["no-such-example"])).status_code == 404
    assert alice.client.get(url).status_code == 405
    assert not Dataset.objects.exists()
