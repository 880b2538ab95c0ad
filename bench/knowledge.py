"""Knowledge performance on the real topology, with a 10,000-passage knowledge base. One JSON line:

- ingestion: texts/s from upload to live (the inference worker embeds each passage and its sentences,
  stores the vectors, goes live) vs direct batched embedding of the same texts in this process (sorted by
  length, batches of 64, as sentence-transformers encodes) — target >= 0.8x;
- /v1/embeddings: texts/s with 64-text requests vs direct embedding of the same requests' texts (each
  encoded as sentence-transformers' encode() does: sorted by length, batches of 32), each request and its
  baseline alternated with the stack running — target >= 0.8x; and,
  for context, vs the ingestion baseline (all 4,096 texts sorted together, which no request can do);
- retrieval's cost in time to first token (p50): the web process's time from a customer turn to its
  candidates (embed the queries, exact search, calibrate) — target <= 30 ms — and, for context, the
  TTFT of grounded replies vs the same generation request sent with the same passages in its prompt;
- resident memory of the knowledge base's index in the worker (bytes per 10,000 passages).
Run: .venv/bin/python -m bench.knowledge   (about 10 minutes on 2 cores)
"""

from __future__ import annotations

import http.client
import json
import statistics
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.stack import Stack, setup_django, temporary_data_dir

PASSAGES = 10_000
BATCH = 64
API_TEXTS = 2048  # /v1/embeddings: 32 requests of 64 texts
ENCODE_BATCH = 32  # sentence-transformers' encode() default
QUESTIONS = ["How much is express shipping?", "Can I return worn shoes?", "Do you ship to Canada?",
             "What sizes do you have for women?", "How do I track my order?", "Do gift cards expire?",
             "Which payment methods do you accept?", "How long is the warranty?", "When will my refund arrive?",
             "Can I change my order?", "Do you have wide shoes?", "What are your phone hours?"]
ROUNDS = 2

_COLOURS = ["black", "white", "navy", "tan", "olive", "red", "grey", "brown", "blue", "green"]
_KINDS = ["runner", "boot", "sandal", "loafer", "sneaker", "trail shoe", "slipper", "oxford", "clog", "mule"]
_MATERIALS = ["leather", "suede", "canvas", "mesh", "nubuck", "recycled knit", "rubber", "felt"]


def catalogue_rows(count: int) -> list[dict]:
    """A big shop's product Q&A: realistic lengths and vocabulary, every row different."""
    rows = []
    for i in range(count):
        colour, kind, material = _COLOURS[i % 10], _KINDS[(i // 10) % 10], _MATERIALS[(i // 100) % 8]
        rows.append({"question": f"What is the AC-{10000 + i} {colour} {kind} made of and how does it fit?",
                     "answer": f"The AC-{10000 + i} is a {colour} {material} {kind} with a cushioned insole and a "
                               f"rubber outsole. It runs {['true to size', 'half a size small', 'wide'][i % 3]}; "
                               f"sizes {5 + i % 4} to {12 + i % 4}. Care: {['wipe clean', 'brush', 'hand-wash'][i % 3]}"
                               f". Weight {200 + i % 300} g per shoe.",
                     "section": f"Catalogue {kind}s"})
    return rows


class DirectEmbedder:
    """Plain transformers embedding in this process, as sentence-transformers encodes a list: sorted by
    length, in batches; in what the worker computes encoders in (bfloat16 on a CPU with it natively)."""

    def __init__(self) -> None:
        from transformers import AutoModel, AutoTokenizer

        from store.models import FoundationModel
        from workers.models.loading import configure_torch_threads, encoder_dtype_for, model_folder

        configure_torch_threads()
        folder = model_folder(FoundationModel.objects.get(slug="gpt-store-retrieval"))  # what the KB embeds with
        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        self.model = AutoModel.from_pretrained(folder).eval().to(encoder_dtype_for("cpu"))

    def seconds(self, texts: list[str], batch: int) -> float:
        import torch

        from workers.models.pooling import mean_pool

        started = time.perf_counter()
        with torch.inference_mode():
            ordered = sorted(texts, key=len)
            for start in range(0, len(ordered), batch):
                encoded = self.tokenizer(ordered[start:start + batch], padding=True, truncation=True,
                                         return_tensors="pt")
                mean_pool(self.model(**encoded).last_hidden_state, encoded["attention_mask"])
        return time.perf_counter() - started


def post(url: str, key: str, path: str, body: dict) -> dict:
    request = urllib.request.Request(url + path, data=json.dumps(body).encode(), method="POST",
                                     headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=600) as response:
        return json.loads(response.read())


def ttft(url: str, key: str, model: str, messages: list[dict]) -> float:
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=300)
    body = {"model": model, "stream": True, "max_tokens": 8, "temperature": 0, "messages": messages}
    started = time.perf_counter()
    connection.request("POST", "/v1/chat/completions", body=json.dumps(body),
                       headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    first = None
    for raw in connection.getresponse():
        line = raw.strip()
        if line.startswith(b"data: {") and b'"content":"' in line and b'"content":""' not in line:
            first = first or time.perf_counter()
    connection.close()
    assert first is not None, "no content streamed"
    return first - started


def wait_live(source, timeout: float = 1800) -> float:
    from knowledge.models import VersionStatus

    started = time.monotonic()
    while True:
        version = source.versions.get()
        if version.status == VersionStatus.LIVE:
            return version.live_at.timestamp() - version.created_at.timestamp()
        if version.status == VersionStatus.FAILED or time.monotonic() - started > timeout:
            raise RuntimeError(f"ingestion did not finish: {version.status} {version.error}")
        time.sleep(0.5)


def main() -> None:
    data_dir = temporary_data_dir("gptstore-bench-knowledge-")
    setup_django(data_dir)
    from accounts import people
    from knowledge import deployments, sources
    from knowledge.chunking import vector_texts
    from knowledge.models import AnswerPolicy, Passage
    from knowledge.prompting import grounded_messages
    from store import deploy
    from store.api_keys import create_api_key
    from store.models import FoundationModel

    user = people.create_user("bench@example.com", "a-long-bench-passphrase")
    organization = people.create_organization("Bench", user)
    _, key = create_api_key(organization, "bench", requests_per_minute=100_000, tokens_per_minute=100_000_000)
    rows = catalogue_rows(PASSAGES - 31)
    catalogue = "\n".join(json.dumps(row) for row in rows).encode()
    faq = (Path(__file__).resolve().parent.parent / "finetune" / "demo_data" / "acme-faq.md").read_bytes()
    smol = FoundationModel.objects.get(slug="smollm2-135m-instruct")
    grounded = deploy.create_or_update(organization, "grounded", deploy.ModelChoice(base=smol), temperature=0,
                                       max_tokens=8)
    deploy.create_or_update(organization, "plain", deploy.ModelChoice(base=smol), temperature=0,
                            max_tokens=8)
    # What ingestion embeds: each passage and each of its sentences (knowledge.chunking.vector_texts).
    texts = [text for row in rows for text in vector_texts(f"{row['section']} › {row['question']}", row["answer"],
                                                             row["question"])]
    with Stack(data_dir) as stack:
        stack.wait_for_worker()
        knowledge_base = sources.create_knowledge_base(organization, "Big shop")
        sources.add_file(knowledge_base, faq, "acme-faq.md")
        source = sources.add_file(knowledge_base, catalogue, "catalogue.jsonl")
        ingestion_seconds = wait_live(source)
        deployments.configure(grounded, knowledge_base=knowledge_base, policy=AnswerPolicy.GROUNDED, threshold=0.0)
        ingestion_rate = len(texts) / ingestion_seconds

        # Each request through the API, then the same texts embedded directly in this process, alternated:
        # both see the same machine (this one is noisy), with the stack running.
        direct = DirectEmbedder()
        requests = [texts[start:start + BATCH] for start in range(0, API_TEXTS, BATCH)]
        post(stack.url, key, "/v1/embeddings", {"model": "all-minilm-l6-v2", "input": requests[0]})  # warm
        direct.seconds(requests[0], ENCODE_BATCH)
        api_seconds = direct_requests_seconds = 0.0
        for request in requests:
            started = time.perf_counter()
            post(stack.url, key, "/v1/embeddings", {"model": "all-minilm-l6-v2", "input": request})
            api_seconds += time.perf_counter() - started
            direct_requests_seconds += direct.seconds(request, ENCODE_BATCH)
        api_rate = API_TEXTS / api_seconds
        direct_requests_rate = API_TEXTS / direct_requests_seconds

        with_knowledge, same_prompt, retrieval = [], [], []
        for _ in range(ROUNDS):
            for question in QUESTIONS:
                turn = [{"role": "user", "content": question}]
                answer = post(stack.url, key, "/v1/chat/completions", {"model": "grounded", "messages": turn,
                                                                       "max_tokens": 8})
                retrieval.append(answer["grounding"]["retrieval_ms"])
                ids = [c["passage_id"] for c in answer["citations"]]
                passages = [{"title": p.title, "text": p.text} for p in sorted(
                    Passage.objects.filter(pk__in=ids), key=lambda p: ids.index(p.pk))]
                prompt = grounded_messages(grounded.system_prompt, turn, passages)
                with_knowledge.append(ttft(stack.url, key, "grounded", turn))
                same_prompt.append(ttft(stack.url, key, "plain", prompt))
        stats = stack.celery().send_task("store.serving.tasks.engine_stats", queue="inference").get(timeout=60)
        index_bytes = sum(e["bytes"] for e in stats["resident"]["entries"] if e["kind"] == "index")
    # Ingestion has every text at once: its baseline sorts them all. An API client's request is its own
    # list: its baseline (above) encodes the same requests' texts, each as sentence-transformers' encode() would.
    direct_rate = 4096 / direct.seconds(texts[:4096], BATCH)
    print(json.dumps({
        "benchmark": "knowledge", "passages": PASSAGES,
        "vectors": len(texts), "ingestion_vectors_per_s": round(ingestion_rate, 1),
        "direct_embedding_texts_per_s": round(direct_rate, 1),
        "ingestion_ratio": round(ingestion_rate / direct_rate, 3),
        "api_embeddings_texts_per_s": round(api_rate, 1),
        "direct_embedding_same_requests_texts_per_s": round(direct_requests_rate, 1),
        "api_embeddings_ratio": round(api_rate / direct_requests_rate, 3),
        "api_embeddings_ratio_vs_all_texts_sorted": round(api_rate / direct_rate, 3),
        # Retrieval (web -> worker: embed the turn's queries, exact search over 10,000 passages) as the
        # web process timed it, before any generation starts: what it adds to TTFT.
        "retrieval_added_ttft_p50_ms": round(statistics.median(retrieval), 1),
        # End to end for context: a grounded reply's first text also waits for its first whole sentence
        # to pass the fact check; the baseline sends the same prompt without retrieval.
        "ttft_grounded_p50_ms": round(1000 * statistics.median(with_knowledge), 1),
        "ttft_same_prompt_without_retrieval_p50_ms": round(1000 * statistics.median(same_prompt), 1),
        "index_bytes_per_10k_passages": int(index_bytes * 10_000 / PASSAGES),
        "targets": {"ingestion_ratio": 0.8, "api_embeddings_ratio": 0.8, "retrieval_added_ttft_p50_ms": 30},
    }), flush=True)


if __name__ == "__main__":
    main()
