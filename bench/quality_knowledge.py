"""Answer quality of the demo bot on customer questions, through the product's real path (`make quality`).

A stack runs (Daphne, the inference worker, Redis); Acme's help centre (acme-faq.md) is a knowledge base;
every question goes to /v1/chat/completions of a deployment, 8 at a time. Four bots:

- base without knowledge: the bundled SmolLM2 on its own (the old demo);
- base + knowledge, quote: the reply is the best passage (the demo's default);
- base + knowledge, grounded: SmolLM2 phrases the answer from the passages, checked for unsupported facts;
- tuned + knowledge, grounded: SmolLM2 tuned with the answer-from-passages recipe.

Question sets (finetune/demo_data/): the held-out paraphrases, customer-worded questions (typos, indirect,
multi-part, angry, follow-ups) and questions the help centre does not answer. Retrieval recall@1/@3 is
measured for the bundled embedding model and for one tuned on Acme's retrieval pairs.
"""

from __future__ import annotations

import json
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.knowledge import post

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "finetune" / "demo_data"
SETS = {"held-out paraphrases": "acme-support-faq-heldout.jsonl", "customer questions": "acme-customer-questions.jsonl"}
UNANSWERABLE = "acme-unanswerable-questions.jsonl"
CONCURRENCY = 8
OFFERS_PERSON = re.compile(r"(don't|do not|can't|cannot) (know|find|answer|help)|not sure|isn't covered", re.I)
PERSON = re.compile(r"\b(someone|person|team|agent|human|colleague)\b", re.I)


def read(name: str) -> list[dict]:
    return [json.loads(line) for line in (DATA / name).read_text().splitlines() if line.strip()]


def normalised(text: str) -> str:
    return text.lower().replace("\u2013", "-").replace("\u2014", "-").replace("**", "")


def contains_facts(answer: str, facts: list[str]) -> bool:
    return all(normalised(fact) in normalised(answer) for fact in facts)


def turns_of(item: dict) -> list[str]:
    return item.get("turns") or [item["question"]]


def ask(url: str, key: str, model: str, item: dict) -> dict:
    """The bot's answer to the item's last turn (a follow-up is asked after the bot answered the first)."""
    messages: list[dict] = []
    body: dict = {}
    for turn in turns_of(item):
        messages.append({"role": "user", "content": turn})
        body = post(url, key, "/v1/chat/completions", {"model": model, "messages": messages, "max_tokens": 120,
                                                        "temperature": 0})
        messages.append({"role": "assistant", "content": body["choices"][0]["message"]["content"]})
    return body


def answer_all(url: str, key: str, model: str, items: list[dict]) -> list[dict]:
    with ThreadPoolExecutor(CONCURRENCY) as pool:
        return list(pool.map(lambda item: ask(url, key, model, item), items))


def invented(reply: str, question: str, knowledge_text: str) -> list[str]:
    """Specifics in a reply that neither Acme's help centre nor the customer's words hold."""
    from knowledge.faithfulness import Support, check

    return [s.text for s in check(reply, Support.of([knowledge_text, question])).unsupported]


def score(answerable: dict[str, list[tuple[dict, dict]]], unanswerable: list[tuple[dict, dict]],
          knowledge_text: str) -> dict:
    figures: dict = {}
    for name, pairs in answerable.items():
        right = sum(contains_facts(body["choices"][0]["message"]["content"], item["must_contain"])
                    for item, body in pairs)
        refused = sum((body.get("grounding") or {}).get("outcome") == "did_not_know" for _, body in pairs)
        figures[name] = {"questions": len(pairs), "fact_recall": right / len(pairs), "refused": refused / len(pairs),
                         "not_sure": sum(_not_sure(body) for _, body in pairs) / len(pairs)}
    inventions, offered = 0, 0
    examples = []
    for item, body in unanswerable:
        reply = body["choices"][0]["message"]["content"]
        made_up = invented(reply, " ".join(turns_of(item)), knowledge_text)
        inventions += bool(made_up)
        knows_not = (body.get("grounding") or {}).get("outcome") == "did_not_know" or bool(OFFERS_PERSON.search(reply))
        offered += knows_not and bool(PERSON.search(reply))
        if made_up and len(examples) < 3:
            examples.append({"question": turns_of(item)[-1], "reply": reply[:300], "invented": made_up})
    figures["unanswerable"] = {"questions": len(unanswerable), "invented_specifics": inventions / len(unanswerable),
                               "offered_a_person": offered / len(unanswerable),
                               "not_sure": sum(_not_sure(body) for _, body in unanswerable) / len(unanswerable),
                               "examples": examples}
    return figures


def _not_sure(body: dict) -> bool:
    """Said it was not sure, showed the closest entry and offered a person (knowledge/policy.py UNSURE_BAND)."""
    return (body.get("grounding") or {}).get("outcome") == "not_sure"


def evaluate_bot(url: str, key: str, model: str, knowledge_text: str) -> dict:
    answerable = {name: list(zip(read(file), answer_all(url, key, model, read(file)), strict=True))
                  for name, file in SETS.items()}
    questions = read(UNANSWERABLE)
    unanswerable = list(zip(questions, answer_all(url, key, model, questions), strict=True))
    figures = score(answerable, unanswerable, knowledge_text)
    figures["examples"] = [{"question": turns_of(item)[-1], "must_contain": item["must_contain"],
                            "reply": body["choices"][0]["message"]["content"][:400],
                            "sources": [c["title"] for c in body.get("citations", [])]}
                           for item, body in answerable["customer questions"][:4]]
    return figures


def retrieval_recall(knowledge_base_id: int, engine, items: list[dict]) -> dict:
    """recall@1/@3 of the passage holding each answer (questions with one fact), as the product retrieves:
    the turn's queries together, each passage at its best similarity."""
    from knowledge import worker
    from knowledge.policy import retrieval_queries

    hits = {"@1": 0, "@3": 0}
    counted = 0
    for item in items:
        if len(item["must_contain"]) != 1:
            continue
        counted += 1
        lookup = retrieval_queries([{"role": "user", "content": turn} for turn in turns_of(item)])
        candidates = worker.retrieve({"knowledge_base": knowledge_base_id, **lookup.payload(), "k": 8},
                                     engine)["candidates"]
        holds = [contains_facts(c["title"] + " " + c["text"], item["must_contain"]) for c in candidates]
        hits["@1"] += any(holds[:1])
        hits["@3"] += any(holds[:3])
    return {name: value / counted for name, value in hits.items()} | {"questions": counted}
