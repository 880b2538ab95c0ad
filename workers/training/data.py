"""Turn dataset rows into token ids and labels (or, for retrieval, query and passage token ids).

Dialogue rows are rendered with the base model's own chat template, and the loss is put on
exactly the assistant replies: each assistant message's content tokens plus the end-of-turn
token that follows it. Nothing else is trained: not the system/user turns, not the
``<|im_start|>assistant\\n`` header, not the newline after ``<|im_end|>``.

Two shortcuts fail here, which is why spans are found on the rendered text instead:
transformers' ``return_assistant_tokens_mask`` returns all zeros for ChatML templates without
``{% generation %}`` markers (SmolLM2's), and SmolLM2's pad token *is* ``<|im_end|>``, so masking
labels by pad id would drop the end token and the tuned model would never stop talking.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

IGNORE_INDEX = -100

# End-of-turn markers of common chat templates, tried after the tokenizer's own eos token.
_END_OF_TURN_MARKERS = ("<|im_end|>", "<|eot_id|>", "<end_of_turn>", "<|end|>", "</s>")


@dataclass(frozen=True)
class Encoded:
    """One training row: token ids and, per task, per-token labels or a single class index."""

    input_ids: list[int]
    labels: list[int]  # dialogue: one per token (IGNORE_INDEX = not trained); sentiment: [class index]

    @property
    def length(self) -> int:
        return len(self.input_ids)


@dataclass(frozen=True)
class EncodedPair:
    """One retrieval row: a query and the passage that answers it, each read on its own by the encoder."""

    query_ids: list[int]
    passage_ids: list[int]

    @property
    def length(self) -> int:
        """Tokens of both sides: what a row costs in a batch."""
        return len(self.query_ids) + len(self.passage_ids)


@dataclass
class EncodingReport:
    """Rows that could not be used, by reason, so the job page can say what happened to them."""

    kept: int = 0
    truncated_away: int = 0  # every assistant token fell beyond max_seq_length
    without_assistant: int = 0
    unlocatable: int = 0  # the chat template rewrote the assistant text, so its span is unknown

    @property
    def dropped(self) -> int:
        return self.truncated_away + self.without_assistant + self.unlocatable

    def describe(self, split: str) -> str | None:
        if not self.dropped:
            return None
        parts = []
        if self.truncated_away:
            parts.append(f"{self.truncated_away} whose assistant replies lie entirely beyond the maximum "
                         "sequence length")
        if self.without_assistant:
            parts.append(f"{self.without_assistant} without an assistant message")
        if self.unlocatable:
            parts.append(f"{self.unlocatable} whose assistant text the chat template altered")
        return f"Dropped {self.dropped} of {self.dropped + self.kept} {split} rows: {'; '.join(parts)}."


def render_chat(tokenizer, messages: Sequence[dict], add_generation_prompt: bool = False) -> str:
    return tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=add_generation_prompt)


def _end_of_turn_markers(tokenizer) -> list[str]:
    own = [tokenizer.eos_token] if tokenizer.eos_token else []
    return own + [marker for marker in _END_OF_TURN_MARKERS if marker not in own]


def assistant_spans(tokenizer, messages: Sequence[dict], text: str) -> list[tuple[int, int]] | None:
    """Character spans [start, end) of each assistant reply plus its end-of-turn marker in `text`.

    The reply starts where the template's rendering of the conversation so far, with a generation
    prompt, ends: that is exactly where a model generates, so the header is never included.
    Templates whose renderings are not prefixes of each other fall back to searching for the
    content after the previous message. None when a reply cannot be found verbatim.
    """
    markers = _end_of_turn_markers(tokenizer)
    spans: list[tuple[int, int]] = []
    cursor = 0
    for index, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        content = message["content"]
        prefix = render_chat(tokenizer, messages[:index], add_generation_prompt=True)
        if len(prefix) >= cursor and text.startswith(prefix) and text.startswith(content, len(prefix)):
            start = len(prefix)
        elif content:
            start = text.find(content, cursor)
            if start < 0:
                return None
        else:
            return None
        end = start + len(content)
        marker = next((m for m in markers if text.startswith(m, end)), "")
        spans.append((start, end + len(marker)))
        cursor = end + len(marker)
    return spans


def label_tokens(offsets: Sequence[tuple[int, int]], spans: Sequence[tuple[int, int]]) -> list[bool]:
    """Which tokens overlap a labelled character span (zero-width tokens never do)."""
    flags = []
    for token_start, token_end in offsets:
        flags.append(token_end > token_start and any(token_start < end and token_end > start
                                                     for start, end in spans))
    return flags


def encode_dialogue_row(tokenizer, messages: Sequence[dict], max_seq_length: int) -> tuple[Encoded | None, str]:
    """Encode one conversation; returns (row, "") or (None, reason it was dropped)."""
    if not any(message["role"] == "assistant" for message in messages):
        return None, "without_assistant"
    text = render_chat(tokenizer, messages)
    spans = assistant_spans(tokenizer, messages, text)
    if spans is None:
        return None, "unlocatable"
    encoding = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    flags = label_tokens(encoding["offset_mapping"], spans)
    input_ids = list(encoding["input_ids"])[:max_seq_length]
    labels = [token if flag else IGNORE_INDEX for token, flag in zip(input_ids, flags, strict=False)]
    if all(label == IGNORE_INDEX for label in labels):
        return None, "truncated_away"
    return Encoded(input_ids, labels), ""


def encode_dialogue(tokenizer, rows: Sequence[dict], max_seq_length: int) -> tuple[list[Encoded], EncodingReport]:
    if not tokenizer.is_fast:
        raise ValueError("dialogue tuning needs a fast tokenizer (tokenizer.json) for character offsets")
    report = EncodingReport()
    encoded = []
    for row in rows:
        item, reason = encode_dialogue_row(tokenizer, row["messages"], max_seq_length)
        if item is None:
            setattr(report, reason, getattr(report, reason) + 1)
            continue
        encoded.append(item)
    report.kept = len(encoded)
    return encoded, report


def encode_sentiment(tokenizer, rows: Sequence[dict], labels: Sequence[str],
                     max_seq_length: int) -> tuple[list[Encoded], EncodingReport]:
    """Texts truncated to max_seq_length; the classifier reads the first (encoder) or last kept (decoder) token."""
    index = {label: i for i, label in enumerate(labels)}
    unknown = sorted({str(row["label"]) for row in rows} - set(index))
    if unknown:
        raise ValueError(f"labels not in the label set {list(labels)}: {', '.join(unknown[:5])}")
    encoded = []
    for row in rows:
        ids = tokenizer(row["text"], truncation=True, max_length=max_seq_length)["input_ids"]
        encoded.append(Encoded(list(ids), [index[row["label"]]]))
    return encoded, EncodingReport(kept=len(encoded))


def encode_pairs(tokenizer, rows: Sequence[dict], max_seq_length: int) -> tuple[list[EncodedPair], EncodingReport]:
    """Queries and passages truncated to max_seq_length each, with the encoder's own [CLS]/[SEP] tokens:
    the serving engine embeds a text exactly so."""
    if not rows:
        return [], EncodingReport()
    queries = tokenizer([row["query"] for row in rows], truncation=True, max_length=max_seq_length)["input_ids"]
    passages = tokenizer([row["passage"] for row in rows], truncation=True, max_length=max_seq_length)["input_ids"]
    encoded = [EncodedPair(list(query), list(passage)) for query, passage in zip(queries, passages, strict=True)]
    return encoded, EncodingReport(kept=len(encoded))
