"""From cosine similarity to confidence: how sure the bot is that a passage answers the question.

Each embedding model has its own similarity scale, so each carries a calibration: the similarity
`cut` at which a passage is taken to answer (confidence 0.5; the default threshold, 0.6, asks a bit
more) and the `scale` of the logistic curve around it. Tuned embedding models record theirs in their manifest
(gpt_store.json, "retrieval_calibration"), measured on their validation questions; the bundled
retrieval model was calibrated on the help centres it was not trained on (docs/knowledge.md).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

MANIFEST = "gpt_store.json"
KEY = "retrieval_calibration"


@dataclass(frozen=True)
class Calibration:
    cut: float
    scale: float

    def confidence(self, similarity: float) -> float:
        return 1.0 / (1.0 + math.exp(-self.scale * (similarity - self.cut)))

    def to_dict(self) -> dict:
        return {"cut": round(self.cut, 4), "scale": round(self.scale, 3)}


# all-MiniLM-L6-v2 as it comes (not tuned for answering): measured on the 16 businesses of
# finetune/retrieval_data, the cut that keeps 90% of answerable questions answered.
UNTUNED = Calibration(cut=0.40, scale=15.0)


def read(folder: str | Path | None) -> Calibration | None:
    """The calibration a model folder's manifest records, if any."""
    if folder is None:
        return None
    path = Path(folder) / MANIFEST
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text()).get(KEY)
        return Calibration(float(data["cut"]), float(data["scale"])) if data else None
    except (ValueError, KeyError, TypeError):
        return None


def fit(answer_similarities: list[float], other_similarities: list[float], keep: float = 0.9) -> Calibration:
    """A calibration from validation data: the cut keeps `keep` of the right passages' similarities above
    it; the scale spreads the logistic curve over the gap to the best wrong passages."""
    right = sorted(answer_similarities)
    if not right:
        return UNTUNED
    cut = right[min(len(right) - 1, int((1 - keep) * len(right)))]
    wrong = sorted(other_similarities)
    spread = (right[len(right) // 2] - wrong[len(wrong) // 2]) if wrong else 0.2
    return Calibration(cut, max(5.0, min(40.0, 4.0 / max(spread, 0.05))))
