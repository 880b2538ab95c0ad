import pytest

from finetune.datasets import create_dataset

SENTIMENT_ROWS = [
    ("Where is my parcel? It is two weeks late.", "negative"),
    ("The boots fell apart after a week, very disappointed.", "negative"),
    ("I was charged twice for one order!", "negative"),
    ("Nobody answers my emails, this is ridiculous.", "negative"),
    ("The sneakers are comfortable and arrived early, thanks!", "positive"),
    ("Great service, the exchange was quick and easy.", "positive"),
    ("Love the new running shoes, perfect fit.", "positive"),
    ("Thank you so much for the fast refund!", "positive"),
    ("Do you ship to Canada?", "neutral"),
    ("What sizes do the trail shoes come in?", "neutral"),
    ("I would like to change my delivery address.", "neutral"),
    ("How do I use a gift card at checkout?", "neutral"),
]


def sentiment_csv(rows=SENTIMENT_ROWS, repeat: int = 1) -> bytes:
    lines = ["text,label"]
    for copy in range(repeat):
        suffix = f" (case {copy})" if copy else ""
        lines += [f'"{text}{suffix}",{label}' for text, label in rows]
    return ("\n".join(lines) + "\n").encode()


@pytest.fixture
def sentiment_dataset(alice):
    return create_dataset(alice.organization, sentiment_csv(), "support.csv", name="Support messages").dataset


@pytest.fixture
def charlie_dataset(charlie):
    return create_dataset(charlie.organization, sentiment_csv(), "secret.csv", name="Charlie secrets").dataset
