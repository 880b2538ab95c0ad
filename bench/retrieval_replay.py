"""Answers from knowledge in seconds, not an hour: every question through the product's retrieval, then its
decision replayed offline (not part of CI).

`make quality` asks the demo bot through a running stack. This embeds each help centre in-process with the
real engine and GPT Store Retrieval, looks every question up exactly as a customer's turn is looked up
(`retrieval_queries` → `knowledge.worker.retrieve`), keeps the candidates, and replays `decide` and
`quote_text` over them for each threshold: what was right (the quote holds every expected fact), refused,
and what share of not-covered questions got "I don't know". Sets: Acme's (held-out paraphrases, customer
questions, not covered) and the help centres GPT Store Retrieval was never trained on
(finetune/retrieval_data/evaluation-only.txt); and, across them, the turns asked after another question
(follow-ups).

    .venv/bin/python -m bench.retrieval_replay                       # Acme, ~10 s
    .venv/bin/python -m bench.retrieval_replay --sets all --save var/replay.json   # + 32 help centres, ~1.5 min
    .venv/bin/python -m bench.retrieval_replay --load var/replay.json           # replay only: seconds

Prints one JSON line: the figures at the default threshold, and per threshold. Change the decision code and
replay a saved run to see what it does on questions it was not tuned on.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.stack import setup_django, temporary_data_dir

REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / "finetune" / "demo_data"
HELP_CENTRES = REPO / "finetune" / "retrieval_data"
ACME_SETS = {"held-out paraphrases": "acme-support-faq-heldout.jsonl",
             "customer questions": "acme-customer-questions.jsonl",
             "not covered": "acme-unanswerable-questions.jsonl"}
CANDIDATES = 8


def _read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _turns(item: dict) -> list[str]:
    return item.get("turns") or [item["question"]]


def _engine():
    from store.inference.protocol import ModelSpec
    from store.models import FoundationModel
    from workers.models.loading import model_folder
    from workers.serving.engine import InferenceEngine

    specs = {f"encoder:{slug}": ModelSpec(f"encoder:{slug}", "encoder",
                                          str(model_folder(FoundationModel.objects.get(slug=slug))))
             for slug in ("all-minilm-l6-v2", "gpt-store-retrieval")}
    engine = InferenceEngine(lambda key: specs[key], device="cpu")
    engine.start()
    return engine


def _looked_up(organization, engine, name: str, document: Path, sets: dict[str, list[dict]]) -> dict:
    """Each question's candidates, as the product retrieves them for a customer's turn."""
    from knowledge import sources, worker
    from knowledge.policy import retrieval_queries

    knowledge_base = sources.create_knowledge_base(organization, name)
    sources.add_file(knowledge_base, document.read_bytes(), document.name)
    for version in sources.pending_versions(knowledge_base):
        worker.embed_version(version.pk, engine)
    knowledge_base.refresh_from_db()
    looked_up = {}
    for set_name, items in sets.items():
        rows = []
        for item in items:
            lookup = retrieval_queries([{"role": "user", "content": text} for text in _turns(item)])
            found = worker.retrieve({"knowledge_base": knowledge_base.pk, **lookup.payload(), "k": CANDIDATES},
                                    engine)
            rows.append({"item": item, "parts_from": lookup.parts_from, "candidates": found["candidates"]})
        looked_up[set_name] = rows
    return looked_up


def retrieve_all(which: str) -> dict:
    setup_django(temporary_data_dir("replay"))
    from accounts import people
    from config.celery import app

    # No broker here: this process embeds each source itself (worker.embed_version), so the embedding task
    # a new source queues goes to an in-memory transport instead of waiting ~20 s on a Redis nobody started.
    app.conf.broker_url, app.conf.result_backend = "memory://", "cache+memory://"

    organization = people.create_organization("Replay", people.create_user("replay@example.com", "x" * 16))
    engine = _engine()
    try:
        result = {"acme": _looked_up(organization, engine, "Acme", DEMO / "acme-faq.md",
                                     {name: _read(DEMO / file) for name, file in ACME_SETS.items()})}
        if which == "all":
            names = [line.strip() for line in (HELP_CENTRES / "evaluation-only.txt").read_text().splitlines()
                     if line.strip() and not line.startswith("#")]
            result["unseen help centres"] = {
                name: _looked_up(organization, engine, name, HELP_CENTRES / name / "kb.md",
                                 {"answerable": _read(HELP_CENTRES / name / "answerable.jsonl"),
                                  "not covered": _read(HELP_CENTRES / name / "unanswerable.jsonl")})
                for name in names}
        return result
    finally:
        engine.stop()


def replay(rows: list[dict], threshold: float) -> dict:
    """The decision over each row's candidates: right / refused for answerable rows, "I don't know" for the rest."""
    from bench.quality_knowledge import contains_facts
    from knowledge.policy import Candidate, decide, quote_text

    right = refused = not_sure = related_right = 0
    for row in rows:
        decision = decide([Candidate.from_dict(c) for c in row["candidates"]], threshold, row["parts_from"],
                          message=_turns(row["item"])[-1])
        shown = decision.shown
        if not shown:
            refused += 1
        not_sure += decision.closest is not None
        if "must_contain" in row["item"] and shown and contains_facts(quote_text(shown), row["item"]["must_contain"]):
            right += 1
        elif "must_contain" in row["item"] and any(contains_facts(quote_text([entry]), row["item"]["must_contain"])
                                                   for entry in decision.related):
            related_right += 1  # the quote missed, but an entry offered under it ("Related:") holds the answer
    total = max(1, len(rows))
    if rows and "must_contain" not in rows[0]["item"]:
        # Both say the bot does not know and offer a person; "not sure" also shows the closest entry.
        return {"questions": len(rows), "dont_know": round(refused / total, 3), "not_sure": round(not_sure / total, 3)}
    return {"questions": len(rows), "right": round(right / total, 3), "refused": round(refused / total, 3),
            "not_sure": round(not_sure / total, 3), "related_holds_answer": round(related_right / total, 3)}


def figures(looked_up: dict, threshold: float) -> dict:
    out = {name: replay(rows, threshold) for name, rows in looked_up["acme"].items()}
    centres = looked_up.get("unseen help centres")
    if centres:
        out["unseen help centres: answerable"] = replay([r for c in centres.values() for r in c["answerable"]],
                                                        threshold)
        out["unseen help centres: not covered"] = replay([r for c in centres.values() for r in c["not covered"]],
                                                         threshold)
    # Turns asked after another question of the conversation ("can he come up the chairlift too?"), from
    # every set above: answered right, or for the not-covered ones told "I don't know" / "not sure".
    every = [*looked_up["acme"].values(), *(rows for c in (centres or {}).values() for rows in c.values())]
    follow_ups = [r for rows in every for r in rows if len(_turns(r["item"])) > 1]
    out["follow-ups: answerable"] = replay([r for r in follow_ups if "must_contain" in r["item"]], threshold)
    out["follow-ups: not covered"] = replay([r for r in follow_ups if "must_contain" not in r["item"]], threshold)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sets", choices=("acme", "all"), default="acme")
    parser.add_argument("--save", type=Path, help="keep the retrieved candidates here")
    parser.add_argument("--load", type=Path, help="replay candidates saved by --save (no retrieval)")
    parser.add_argument("--thresholds", default="0.4,0.5,0.6,0.7")
    args = parser.parse_args()
    if args.load:
        setup_django(temporary_data_dir("replay"))
        looked_up = json.loads(args.load.read_text())
    else:
        looked_up = retrieve_all(args.sets)
        if args.save:
            args.save.parent.mkdir(parents=True, exist_ok=True)
            args.save.write_text(json.dumps(looked_up))
    from knowledge.policy import DEFAULT_THRESHOLD

    print(json.dumps({"benchmark": "retrieval_replay", "threshold": DEFAULT_THRESHOLD,
                      "figures": figures(looked_up, DEFAULT_THRESHOLD),
                      "by_threshold": {value: figures(looked_up, float(value))
                                       for value in args.thresholds.split(",")}}))


if __name__ == "__main__":
    main()
