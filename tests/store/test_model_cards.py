"""The bundled model cards render whole: no table row loses cells to a stray pipe."""

import re
from pathlib import Path

import pytest

CARDS = sorted((Path(__file__).resolve().parents[2] / "store" / "cards").glob("*.md"))
UNESCAPED_PIPE = re.compile(r"(?<!\\)\|")


def tables(text: str) -> list[list[str]]:
    found, current = [], []
    for line in text.splitlines():
        if line.startswith("|"):
            current.append(line)
        elif current:
            found.append(current)
            current = []
    return found + ([current] if current else [])


@pytest.mark.parametrize("card", CARDS, ids=lambda path: path.stem)
def test_every_row_of_a_card_s_tables_has_its_header_s_cells(card):
    for table in tables(card.read_text()):
        widths = {len(UNESCAPED_PIPE.findall(row)) for row in table}
        assert len(widths) == 1, f"{card.name}: a row's cells differ from its header's: {table}"


def test_the_cards_are_found():
    assert len(CARDS) >= 3
