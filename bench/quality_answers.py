"""The knowledge part of `make quality`: set up Acme's bots, tune what can be tuned, ask every question."""

from __future__ import annotations

import json
import time
from pathlib import Path

from bench.quality_knowledge import DATA, SETS, evaluate_bot, read, retrieval_recall
from bench.stack import Stack

BOTS = {"base without knowledge": None, "base + knowledge, quote": "quote", "base + knowledge, grounded": "grounded",
        "tuned + knowledge, grounded": "grounded"}


def _wait_live(knowledge_base, timeout: float = 600) -> None:
    from knowledge import sources

    deadline = time.monotonic() + timeout
    while sources.pending_versions(knowledge_base).exists() or knowledge_base.pending_key is not None:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{knowledge_base} was not embedded in time")
        time.sleep(0.5)
        knowledge_base.refresh_from_db()


def retrieval_pairs_file(faq: Path) -> bytes:
    """Acme's customer-worded retrieval pairs with each heading resolved to the passage it names."""
    from knowledge.chunking import embedding_text, passages
    from knowledge.documents import parse_upload

    drafts = passages(parse_upload(faq.read_bytes(), faq.name, 10**7).sections)
    by_heading = {draft.title.split(" › ")[-1]: draft for draft in drafts}
    lines = []
    for item in read("acme-retrieval-pairs.jsonl"):
        draft = by_heading[item["heading"]]
        lines.append(json.dumps({"query": item["query"],
                                 "passage": embedding_text(draft.title, draft.text, draft.question)}))
    return ("\n".join(lines) + "\n").encode()


def support_answers() -> list[dict]:
    """The support team's answers (acme-support-faq.jsonl), each with the entry it is about."""
    answers: dict[str, str] = {}
    for row in read("acme-support-faq.jsonl"):
        messages = row["messages"]
        for index in range(1, len(messages) - 1):
            if messages[index]["role"] == "user" and messages[index + 1]["role"] == "assistant":
                answers.setdefault(messages[index]["content"], messages[index + 1]["content"])
    items = []
    for pair in read("acme-retrieval-pairs.jsonl"):
        last = pair["query"]
        answer = answers.get(last) or next((text for question, text in answers.items() if last.endswith(question)),
                                           None)
        if answer:
            items.append({"question": pair["query"], "answer": answer, "heading": pair["heading"]})
    return items


def knowledge_quality(data_dir: Path, organization, tune) -> tuple[dict, dict, object, object]:
    from finetune.answer_recipe import recipe_rows
    from knowledge import deployments, sources
    from knowledge.policy import DEFAULT_THRESHOLD
    from stack.demo import TRAINING_SYSTEM_PROMPT
    from store import deploy
    from store.api_keys import create_api_key
    from store.models import FoundationModel

    faq = DATA / "acme-faq.md"
    _, key = create_api_key(organization, "quality", requests_per_minute=100_000, tokens_per_minute=100_000_000)
    smol = FoundationModel.objects.get(slug="smollm2-135m-instruct")

    # Tuned models first, while nothing else runs: the retrieval model and the answer-from-passages bot.
    embedding_job, _ = tune(organization, "all-minilm-l6-v2", retrieval_pairs_file(faq), "acme-retrieval.jsonl",
                            "embedding", "acme-retrieval")
    recipe_base = sources.create_knowledge_base(organization, "Acme recipe source")
    recipe_source = sources.add_file(recipe_base, faq.read_bytes(), faq.name)
    sources.go_live(recipe_source.versions.get().pk)  # the recipe reads passages, not vectors
    rows = recipe_rows(recipe_base, support_answers(), TRAINING_SYSTEM_PROMPT)
    recipe = "".join(json.dumps(row) + "\n" for row in rows).encode()
    recipe_job, _ = tune(organization, "smollm2-135m-instruct", recipe, "acme-answer-from-passages.jsonl",
                         "dialogue", "acme-answers")

    knowledge_text = faq.read_text().replace("**", "")
    bots: dict = {}
    with Stack(data_dir) as stack:
        stack.wait_for_worker()
        knowledge_base = sources.create_knowledge_base(organization, "Acme help centre")
        sources.add_file(knowledge_base, faq.read_bytes(), faq.name, url="https://acme-shoes.example/help")
        tuned_retrieval = sources.create_knowledge_base(organization, "Acme help centre (tuned retrieval)",
                                                        embedding_model=embedding_job.tuned_model)
        sources.add_file(tuned_retrieval, faq.read_bytes(), faq.name)
        _wait_live(knowledge_base)
        _wait_live(tuned_retrieval)
        for number, (name, policy) in enumerate(BOTS.items()):
            choice = deploy.ModelChoice(tuned=recipe_job.tuned_model) if name.startswith("tuned") else \
                deploy.ModelChoice(base=smol)
            slug = f"bot-{number}"
            bot = deploy.create_or_update(organization, slug, choice, system_prompt=TRAINING_SYSTEM_PROMPT,
                                          temperature=0, max_tokens=120)
            if policy is not None:
                deployments.configure(bot, knowledge_base=knowledge_base, policy=policy, threshold=DEFAULT_THRESHOLD)
            started = time.monotonic()
            bots[name] = evaluate_bot(stack.url, key, slug, knowledge_text)
            print(f"{name}: {time.monotonic() - started:.0f} s", flush=True)
    retrieval = _retrieval(knowledge_base, tuned_retrieval)
    return bots, retrieval, recipe_job, embedding_job


def _retrieval(knowledge_base, tuned_retrieval) -> dict:
    from workers.models.loading import configure_torch_threads
    from workers.serving.engine import InferenceEngine
    from workers.serving.resolver import resolve_model_key

    configure_torch_threads()
    engine = InferenceEngine(resolve_model_key, device="cpu")
    engine.start()
    try:
        items = [item for file in SETS.values() for item in read(file)]
        return {"GPT Store Retrieval (bundled, the default)": retrieval_recall(knowledge_base.pk, engine, items),
                "all-MiniLM-L6-v2 tuned on Acme's pairs": retrieval_recall(tuned_retrieval.pk, engine, items)}
    finally:
        engine.stop()
