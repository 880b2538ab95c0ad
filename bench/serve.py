"""Serving through the API vs in-process baselines (bench/serve_engine.py measures the engine alone).

Prints one JSON line per figure:
- api_streaming: time to first token and tokens/s through /v1/chat/completions (SSE) vs a direct
  in-process `model.generate` on the same prompt and settings (target: >= 0.9x tokens/s); the API's own
  TTFT overhead against the same request through an in-process engine set up as the worker's (packed
  weights, prompt cache; the request repeated as the API's is), target <= 50 ms;
- api_concurrency: 8 concurrent streaming clients through the API, aggregate tokens/s (no target: web,
  Redis, clients and worker share the machine);
- api_sentiment: texts/s through /v1/sentiment with 64-text requests vs direct batched calls of the same
  tuned classifier (target >= 0.8x).
Run: .venv/bin/python -m bench.serve
"""

from __future__ import annotations

import http.client
import json
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.stack import Stack, setup_django, temporary_data_dir

PROMPT = "Write a detailed paragraph about how running shoes are made, from the sole to the laces."
SYSTEM = "You are a helpful assistant."
MAX_TOKENS = 128
ROUNDS = 3
# TTFT is a few tens of ms on a noisy machine: its medians are over this many short requests (8 tokens each).
TTFT_ROUNDS = 15
TTFT_TOKENS = 8


def stream_once(url: str, key: str, model: str, prompt: str = PROMPT, max_tokens: int = MAX_TOKENS) -> dict:
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=300)
    body = {"model": model, "stream": True, "max_tokens": max_tokens, "temperature": 0,
            "stream_options": {"include_usage": True}, "messages": [{"role": "user", "content": prompt}]}
    started = time.perf_counter()
    connection.request("POST", "/v1/chat/completions", body=json.dumps(body),
                       headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    response = connection.getresponse()
    first = last = None
    usage, text = None, ""
    for raw in response:
        line = raw.strip()
        if not line.startswith(b"data: ") or line == b"data: [DONE]":
            continue
        data = json.loads(line[6:])
        if data.get("usage"):
            usage = data["usage"]
        for choice in data.get("choices", []):
            if choice["delta"].get("content"):
                now = time.perf_counter()
                first = first or now
                last = now
                text += choice["delta"]["content"]
    connection.close()
    tokens = usage["completion_tokens"]
    return {"ttft": first - started, "tokens": tokens, "decode_seconds": last - first, "total": last - started,
            "text": text}


def direct_generate(folder: Path, prompt: str = PROMPT) -> dict:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, TextIteratorStreamer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": prompt}]
    inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt",
                                           return_dict=True)
    def run(streamer, output: dict) -> None:
        with torch.no_grad():
            output["ids"] = model.generate(**inputs, max_new_tokens=MAX_TOKENS, do_sample=False,
                                           streamer=streamer, pad_token_id=tokenizer.pad_token_id)

    runs = []
    for _ in range(ROUNDS):
        streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
        started = time.perf_counter()
        output: dict = {}
        thread = threading.Thread(target=run, args=(streamer, output))
        thread.start()
        first = None
        for piece in streamer:
            if piece and first is None:
                first = time.perf_counter()
        thread.join()
        end = time.perf_counter()
        tokens = output["ids"].shape[1] - inputs["input_ids"].shape[1]
        runs.append({"ttft": first - started, "tokens": tokens, "decode_seconds": end - first})
    return summarize(runs)


@contextmanager
def in_process_engine(folder: Path) -> Iterator[Callable[[], float]]:
    """An in-process engine configured as the inference worker configures its own, warmed with the API's
    request; yields a function that times one more of it (TTFT in ms, TTFT_TOKENS tokens)."""
    from django.conf import settings

    from bench.decode import engine_run
    from store.inference.protocol import ModelSpec
    from workers.serving.engine import InferenceEngine

    spec = ModelSpec(key="smol", kind="causal", base_folder=str(folder))
    engine = InferenceEngine(lambda key: spec, device="cpu", packed_weights=settings.INFERENCE_PACKED_WEIGHTS,
                             prompt_cache_bytes=settings.INFERENCE_PROMPT_CACHE_BYTES)
    engine.start()
    try:
        engine.preload(["smol"])
        messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": PROMPT}]
        engine_run(engine, "smol", messages, MAX_TOKENS)  # as the API's first request, which warms it
        yield lambda: engine_run(engine, "smol", messages, TTFT_TOKENS)["ttft_ms"]
    finally:
        engine.stop()


def summarize(runs: list[dict]) -> dict:
    return {"ttft_ms": round(1000 * statistics.median(r["ttft"] for r in runs), 1),
            "tokens": runs[-1]["tokens"],
            "tokens_per_s": round(statistics.median((r["tokens"] - 1) / r["decode_seconds"] for r in runs), 2)}


def sentiment_texts(n: int) -> list[str]:
    import csv

    path = Path(__file__).resolve().parent.parent / "finetune" / "demo_data" / "acme-support-sentiment.csv"
    rows = [row["text"] for row in csv.DictReader(path.open())]
    return (rows * (n // len(rows) + 1))[:n]


def api_sentiment(url: str, key: str, model: str, texts: list[str]) -> float:
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=300)
    started = time.perf_counter()
    for start in range(0, len(texts), 64):
        connection.request("POST", "/v1/sentiment", body=json.dumps({"model": model, "input": texts[start:start + 64]}),
                           headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
        response = connection.getresponse()
        assert response.status == 200, response.read()
        response.read()
    return len(texts) / (time.perf_counter() - started)


def direct_sentiment(tuned, texts: list[str], grouped: bool = False) -> float:
    """Texts per second of the tuned classifier called in this process, 64 texts per batch, each
    batch padded to its longest text, or (grouped) split by length as the serving engine does."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from store.tuned import artifact_folder
    from workers.serving.classification import length_groups

    folder = artifact_folder(tuned)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    started = time.perf_counter()
    with torch.no_grad():
        for start in range(0, len(texts), 64):
            batch = texts[start:start + 64]
            groups = [list(range(len(batch)))]
            if grouped:
                lengths = [len(ids) for ids in tokenizer(batch, truncation=True, max_length=256)["input_ids"]]
                groups = length_groups(lengths)
            for group in groups:
                encoded = tokenizer([batch[i] for i in group], padding=True, truncation=True, max_length=256,
                                    return_tensors="pt")
                model(**encoded).logits.softmax(-1)
    return len(texts) / (time.perf_counter() - started)


def main() -> None:
    import os

    from stack.cluster import INFERENCE_SPIN

    # The in-process baselines' torch threads spin as the inference worker's do (before torch loads).
    os.environ.setdefault("GOMP_SPINCOUNT", str(INFERENCE_SPIN))
    data_dir = temporary_data_dir("gptstore-bench-serve-")
    setup_django(data_dir)
    from accounts import people
    from store import deploy
    from store.api_keys import create_api_key
    from store.models import FoundationModel
    from workers.models.loading import model_folder

    user = people.create_user("bench@example.com", "a-long-bench-passphrase")
    organization = people.create_organization("Bench", user)
    _, key = create_api_key(organization, "bench", requests_per_minute=100_000, tokens_per_minute=10_000_000)
    smol = FoundationModel.objects.get(slug="smollm2-135m-instruct")
    deploy.create_or_update(organization, "bench-bot", deploy.ModelChoice(base=smol), system_prompt=SYSTEM,
                            temperature=0.0, max_tokens=MAX_TOKENS)
    folder = model_folder(smol)
    tuned = train_sentiment(organization)

    direct = direct_generate(folder)
    direct_sentiment_rate = statistics.median(direct_sentiment(tuned, sentiment_texts(640)) for _ in range(2))
    grouped_sentiment_rate = statistics.median(direct_sentiment(tuned, sentiment_texts(640), grouped=True)
                                               for _ in range(2))
    with Stack(data_dir) as stack, in_process_engine(folder) as engine_ttft_once:
        stack.wait_for_worker()
        stream_once(stack.url, key, "bench-bot")  # the first request loads and warms the model
        runs = [stream_once(stack.url, key, "bench-bot") for _ in range(ROUNDS)]
        api = summarize(runs)
        # TTFT through the API and through the in-process engine, alternated so both see the same machine.
        api_ttfts, engine_ttfts = [], []
        for _ in range(TTFT_ROUNDS):
            api_ttfts.append(1000 * stream_once(stack.url, key, "bench-bot", max_tokens=TTFT_TOKENS)["ttft"])
            engine_ttfts.append(engine_ttft_once())
        api_ttft, engine_ttft = (round(statistics.median(values), 1) for values in (api_ttfts, engine_ttfts))
        print(json.dumps({
            "benchmark": "api_streaming", "model": "smollm2-135m-instruct", "max_tokens": MAX_TOKENS,
            # TTFT: medians of TTFT_ROUNDS short requests of the same prompt, API and in-process engine
            "api_ttft_ms": api_ttft, "engine_ttft_ms": engine_ttft, "direct_ttft_ms": direct["ttft_ms"],
            "ttft_overhead_ms": round(api_ttft - engine_ttft, 1),
            "api_tokens_per_s": api["tokens_per_s"], "direct_tokens_per_s": direct["tokens_per_s"],
            "tokens_per_s_ratio": round(api["tokens_per_s"] / direct["tokens_per_s"], 3),
            "api_tokens": api["tokens"], "direct_tokens": direct["tokens"],
        }), flush=True)

        results: list[dict] = []
        prompts = [f"{PROMPT} Focus on detail number {i}." for i in range(8)]
        threads = [threading.Thread(target=lambda p=p: results.append(stream_once(stack.url, key, "bench-bot", p)))
                   for p in prompts]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - started
        total = sum(r["tokens"] for r in results)
        print(json.dumps({
            "benchmark": "api_concurrency", "clients": 8, "aggregate_tokens_per_s": round(total / wall, 2),
            "single_client_tokens_per_s": api["tokens_per_s"],
            "speedup_vs_single": round(total / wall / api["tokens_per_s"], 2),
            "median_ttft_ms": round(1000 * statistics.median(r["ttft"] for r in results), 1),
        }), flush=True)

        texts = sentiment_texts(640)
        api_sentiment(stack.url, key, tuned.openai_id, texts[:64])  # load and warm up
        api_rate = statistics.median(api_sentiment(stack.url, key, tuned.openai_id, texts) for _ in range(2))
        print(json.dumps({
            "benchmark": "api_sentiment", "texts": len(texts), "request_size": 64,
            "api_texts_per_s": round(api_rate, 1), "direct_texts_per_s": round(direct_sentiment_rate, 1),
            "ratio": round(api_rate / direct_sentiment_rate, 3),
            "direct_grouped_texts_per_s": round(grouped_sentiment_rate, 1),  # split by length, as the engine
            "ratio_vs_grouped_direct": round(api_rate / grouped_sentiment_rate, 3),
        }), flush=True)


def train_sentiment(organization):
    """A real tuned MiniLM classifier (one short epoch: throughput, not accuracy, is measured here)."""
    from finetune import jobs
    from finetune.datasets import create_dataset
    from finetune.runner import run_job
    from store.models import FoundationModel

    path = Path(__file__).resolve().parent.parent / "finetune" / "demo_data" / "acme-support-sentiment.csv"
    dataset = create_dataset(organization, path.read_bytes(), path.name).dataset
    job = jobs.create_job(organization, FoundationModel.objects.get(slug="all-minilm-l6-v2"), dataset,
                          suffix="bench-sentiment", enqueue=False, overrides={"epochs": 1})
    job = run_job(job.pk, "bench")
    assert job.status == "succeeded", job.error_message
    return job.tuned_model


if __name__ == "__main__":
    main()
