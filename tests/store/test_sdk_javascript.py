"""The official `openai` npm package against the live stack (node runs tests/js/sdk_check.mjs)."""

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.factories import deploy_tiny_bot, organization_with_key, sentiment_csv_bytes

pytestmark = pytest.mark.live
JS = Path(__file__).resolve().parents[1] / "js"


def test_the_javascript_sdk_works_unchanged(live, tiny_chat_base, tiny_encoder_base, tmp_path):
    assert (JS / "node_modules" / "openai").exists(), "scripts/system-deps.sh installs the npm package"
    organization, _, key = organization_with_key()
    deploy_tiny_bot(organization, tiny_chat_base)
    training = tmp_path / "moods.csv"
    training.write_bytes(sentiment_csv_bytes())
    env = dict(os.environ, GPT_STORE_URL=live.url, GPT_STORE_KEY=key, CHAT_MODEL="tiny-bot",
               EMBEDDING_MODEL="tiny-encoder", TRAINING_FILE=str(training))
    result = subprocess.run(["node", "sdk_check.mjs"], cwd=JS, env=env, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert "tiny-bot" in out["models"] and "tiny-encoder" in out["models"]
    assert out["reply"]["object"] == "chat.completion" and out["reply"]["usage"]["completion_tokens"] >= 1
    assert out["stream"]["text"] == out["reply"]["content"]  # greedy: same answer streamed or not
    assert out["stream"]["finishes"] in (["stop"], ["length"]) and out["stream"]["usage"]["total_tokens"] > 0
    assert out["notFound"] == {"status": 404, "code": "model_not_found", "param": "model"}
    assert out["badRequest"] == {"status": 400, "param": "n"}
    embeddings = out["embeddings"]
    assert embeddings["count"] == 2 and embeddings["dim"] == 32 and embeddings["usage"]["prompt_tokens"] > 0
    assert embeddings["decoded"] == pytest.approx(embeddings["floats"], abs=1e-6)
    fine_tuning = out["fineTuning"]
    assert fine_tuning["file"].startswith("file-") and fine_tuning["retrieved"] == fine_tuning["job"]
    assert fine_tuning["status"] in ("queued", "running") and fine_tuning["cancelled"] in ("cancelled", "running")
