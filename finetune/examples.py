"""Example datasets a new organization can start from, shipped with GPT Store (finetune/demo_data/).

A business without labelled data of its own can still tune a sentiment model in two clicks: the example is
stored as any upload is (validated, split, the organization's own copy), and its model scores the chat
widget's customer messages until the business tunes one on its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from accounts.models import Organization
from finetune.datasets import DatasetResult, create_dataset

DEMO_DATA = Path(__file__).resolve().parent / "demo_data"


@dataclass(frozen=True)
class Example:
    filename: str
    name: str
    description: str


EXAMPLES = {
    "support-sentiment": Example(
        "acme-support-sentiment.csv", "Support messages (example)",
        "1,357 messages customers sent a shoe shop's support, each labelled negative, neutral or positive: "
        "a sentiment model tuned on them scores your chat widget's messages."),
}


def create_example_dataset(organization: Organization, key: str, user=None, name: str = "") -> DatasetResult:
    """The organization's own copy of an example (KeyError for an unknown one), named `name` or the example's."""
    example = EXAMPLES[key]
    return create_dataset(organization, (DEMO_DATA / example.filename).read_bytes(), example.filename,
                          name=name or example.name, user=user)
