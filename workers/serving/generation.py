"""Continuous batching for one loaded causal model.

All running rows of a model share one KV cache ([rows, heads, seq, head_dim] per layer),
left-padded to a common length; a 2-D attention mask hides the padding and each row keeps its
own position ids, so rows of different lengths and ages decode together one token per step.
New rows are prefilled together in a cache of their own, then concatenated into the running
one; finished rows are cut out at once, and leading columns that no row attends to any more are
trimmed so the cache does not keep growing with rows that have left.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial
from typing import Any

import torch

from store.inference.protocol import CANCELLED, GenerationRequest
from workers.serving.counters import EngineCounters
from workers.serving.kv_cache import keep_rows, left_pad, merge_caches, new_batch_cache, to_slab_cache
from workers.serving.model_cache import Lease, ModelEntry
from workers.serving.prompt_cache import Reuse, reused_states, row_states
from workers.serving.sampling import RowSampling, SamplingState, choose_tokens, row_generator

logger = logging.getLogger(__name__)


class StopMatcher:
    """Cuts the text at the first stop string and holds back any tail that could start one."""

    def __init__(self, stops: list[str] | str) -> None:
        self.stops = [stop for stop in ([stops] if isinstance(stops, str) else stops) if stop]
        self.held = ""

    def feed(self, text: str) -> tuple[str, bool]:
        """(text that is safe to emit, whether a stop string was reached)."""
        if not self.stops:
            return text, False
        buffer = self.held + text
        hits = [index for index in (buffer.find(stop) for stop in self.stops) if index >= 0]
        if hits:
            self.held = ""
            return buffer[:min(hits)], True
        hold = 0
        for stop in self.stops:
            for length in range(min(len(stop) - 1, len(buffer)), hold, -1):
                if buffer.endswith(stop[:length]):
                    hold = length
                    break
        self.held = buffer[len(buffer) - hold:] if hold else ""
        return buffer[:len(buffer) - hold], False

    def flush(self) -> str:
        text, self.held = self.held, ""
        return text


class PrefixDecoder:
    """Incremental detokenizer for tokenizers without a Rust backend (and so without DecodeStream).

    Decodes a short window of recent tokens and emits only text that grew and does not end in an
    incomplete UTF-8 sequence (rendered as U+FFFD), the way text-generation-inference does.
    """

    def __init__(self, tokenizer: Any, context: list[int]) -> None:
        self.tokenizer = tokenizer
        self.tokens = list(context)
        self.prefix_offset = 0
        self.read_offset = len(self.tokens)

    def step(self, _backend: Any, token: int) -> str | None:
        self.tokens.append(token)
        decode = self.tokenizer.decode
        before = decode(self.tokens[self.prefix_offset:self.read_offset], skip_special_tokens=True)
        after = decode(self.tokens[self.prefix_offset:], skip_special_tokens=True)
        if len(after) <= len(before) or after.endswith("\ufffd"):
            return None
        self.prefix_offset, self.read_offset = self.read_offset, len(self.tokens)
        return after[len(before):]


def incremental_decoder(tokenizer: Any, context: list[int]) -> tuple[Any, Any]:
    """(decoder with `.step(backend, token) -> str | None`, backend) for a tokenizer.

    The decoder is seeded with the prompt's last token so decoders that depend on the previous
    token (leading-space handling) render the first generated token as in the full text.
    """
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return PrefixDecoder(tokenizer, context[-1:]), None
    from tokenizers.decoders import DecodeStream

    return DecodeStream(ids=context[-1:], skip_special_tokens=True), backend


class Row:
    """One generation request while it runs: its tokens, detokenizer, stop matching and sink."""

    def __init__(self, request: GenerationRequest, sink: Any, lease: Lease, prompt_ids: list[int],
                 stop_token_ids: set[int]) -> None:
        self.request = request
        self.sink = sink
        self.lease = lease
        self.prompt_ids = prompt_ids
        self.stop_token_ids = set() if request.ignore_eos else stop_token_ids
        self.generator = row_generator(request.seed, request.temperature)
        self.generated: list[int] = []
        self.text_parts: list[str] = []
        self.finish_reason: str | None = None
        self.cancel_requested = False
        self._unemitted_tokens = 0
        self._stopper = StopMatcher(request.stop)
        self._stream, self._backend = incremental_decoder(lease.entry.tokenizer, prompt_ids)

    @property
    def adapter(self) -> str:
        return self.lease.adapter

    @property
    def sampling(self) -> RowSampling:
        request = self.request
        return RowSampling(request.temperature, request.top_p, self.generator, request.frequency_penalty,
                           request.presence_penalty)

    def accept(self, token: int) -> bool:
        """Take the next token; True when the row has finished."""
        self.generated.append(token)
        self._unemitted_tokens += 1
        if token in self.stop_token_ids:
            return self.finish("stop")
        piece = self._stream.step(self._backend, token)
        if piece:
            text, stopped = self._stopper.feed(piece)
            self._emit(text)
            if stopped:
                return self.finish("stop", flush=False)
        if len(self.generated) >= self.request.max_tokens:
            return self.finish("length")
        return False

    def finish(self, reason: str, flush: bool = True) -> bool:
        if flush:
            self._emit(self._stopper.flush())
        self.finish_reason = reason
        call_sink(self.sink.on_done, {
            "text": "".join(self.text_parts), "finish_reason": reason, "prompt_tokens": len(self.prompt_ids),
            "completion_tokens": len(self.generated), "token_ids": list(self.generated),
        })
        return True

    def _emit(self, text: str) -> None:
        if not text:
            return
        self.text_parts.append(text)
        if not call_sink(self.sink.on_tokens, text, self._unemitted_tokens):
            self.cancel_requested = True  # nobody is listening any more
        self._unemitted_tokens = 0


def call_sink(method: Callable[..., None], *args: Any) -> bool:
    """A sink that raises must not take the engine thread (or the other rows) down with it."""
    try:
        method(*args)
    except Exception:
        logger.exception("sink %r failed", method)
        return False
    return True


class DecodeBatch:
    """The running rows of one loaded model."""

    def __init__(self, entry: ModelEntry, counters: EngineCounters, release: Callable[[Row], None]) -> None:
        self.entry = entry
        self.counters = counters
        self.release = release
        self.device = entry.model.device
        self.rows: list[Row] = []
        self.cache: Any = None
        self.mask: torch.Tensor | None = None
        self.positions: torch.Tensor | None = None
        self.pending: torch.Tensor | None = None
        self.sampling: SamplingState | None = None
        self._adapters_stale = True
        self.mergeable = True

    def __len__(self) -> int:
        return len(self.rows)

    def accepts_new_rows(self) -> bool:
        return not self.rows or self.mergeable

    # --- admission -------------------------------------------------------------------------------

    def admit(self, rows: list[Row]) -> None:
        """Prefill `rows` together, emit their first tokens, and merge them into the running batch."""
        entry = self.entry
        prompts = entry.prompts
        reuses = [prompts.lookup(row.adapter, row.prompt_ids) if prompts is not None else Reuse() for row in rows]
        # Each row: [reused states, left-padded to `held`][its prompt's remaining tokens, left-padded to `width`].
        held = max(reuse.length for reuse in reuses)
        remaining = [row.prompt_ids[reuse.length:] for row, reuse in zip(rows, reuses, strict=True)]
        width = max(len(tokens) for tokens in remaining)
        pad_id = entry.tokenizer.pad_token_id or 0
        input_ids = torch.tensor([[pad_id] * (width - len(tokens)) + tokens for tokens in remaining],
                                 device=self.device)
        mask = torch.tensor([[0] * (held - reuse.length) + [1] * reuse.length + [0] * (width - len(tokens))
                             + [1] * len(tokens) for reuse, tokens in zip(reuses, remaining, strict=True)],
                            device=self.device)
        starts = torch.tensor([reuse.length + entry.prefix_length for reuse in reuses], device=self.device)
        positions = (mask[:, held:].cumsum(dim=1) - 1).clamp(min=0) + starts.unsqueeze(1)
        if entry.prefix_length:  # the virtual tokens sit before every row's prompt, attended to by all of it
            mask = torch.cat([torch.ones(len(rows), entry.prefix_length, dtype=mask.dtype, device=self.device),
                              mask], dim=1)
            cache = to_slab_cache(entry.prefix_cache(len(rows)))
        else:
            cache, self.mergeable = new_batch_cache(entry.model.config)
            if held:
                for layer, keys, values in zip(cache.layers, *reused_states(reuses, held), strict=True):
                    layer.set_states(keys, values)
                self.counters.add("prompt_tokens_reused", sum(reuse.length for reuse in reuses))
        if entry.bank is not None:
            entry.bank.activate([row.adapter for row in rows], self.device, also=[row.adapter for row in self.rows])
        self._adapters_stale = True
        with torch.inference_mode():
            if self._prefills_in_kernel(sum(len(tokens) for tokens in remaining), cache):
                assert entry.decoder is not None
                selection = entry.bank.selection() if entry.bank is not None else None
                logits = entry.decoder.prefill(input_ids, positions, mask, cache, selection)
                self.counters.add("kernel_prefills")
            else:
                logits = entry.model(input_ids=input_ids, attention_mask=mask, position_ids=positions, cache=cache,
                                     use_cache=True, logits_to_keep=1).logits[:, -1]
            sampling = SamplingState.for_rows([row.sampling for row in rows], self.device)
            tokens = choose_tokens(logits, sampling)
        self.counters.add("prefill_calls")
        if prompts is not None:
            columns = mask.bool()
            for i, row in enumerate(rows):
                prompts.store(row.adapter, row.prompt_ids, partial(row_states, cache, i, columns[i]))
        self._merge(rows, cache, mask, positions[:, -1] + 1, tokens, sampling)
        first = len(self.rows) - len(rows)
        token_list = tokens.tolist()
        finished = [first + i for i, row in enumerate(rows) if row.accept(token_list[i])]
        self._remove(finished)

    def _merge(self, rows: list[Row], cache: Any, mask: torch.Tensor, positions: torch.Tensor,
               tokens: torch.Tensor, sampling: SamplingState) -> None:
        if not self.rows:
            self.rows, self.cache, self.mask = list(rows), cache, mask
            self.positions, self.pending, self.sampling = positions, tokens, sampling
            return
        assert self.mask is not None and self.positions is not None and self.pending is not None
        assert self.sampling is not None
        old_length, new_length = self.mask.shape[1], mask.shape[1]
        merge_caches(self.cache, cache, old_length, new_length)
        length = max(old_length, new_length)
        self.mask = torch.cat([left_pad(self.mask, length - old_length, 1), left_pad(mask, length - new_length, 1)])
        self.positions = torch.cat([self.positions, positions])
        self.pending = torch.cat([self.pending, tokens])
        self.sampling = self.sampling.concat(sampling)
        self.rows.extend(rows)

    # --- decoding --------------------------------------------------------------------------------

    def step(self) -> None:
        """Decode one token for every running row."""
        self._drop_cancelled()
        if not self.rows:
            return
        assert self.mask is not None and self.positions is not None and self.pending is not None
        assert self.sampling is not None
        if self._adapters_stale:
            self._activate_adapters([row.adapter for row in self.rows])
            self._adapters_stale = False
        rows = len(self.rows)
        self.mask = torch.cat([self.mask, self.mask.new_ones(rows, 1)], dim=1)
        with torch.inference_mode():
            if self._runs_in_kernel(rows):
                assert self.entry.decoder is not None
                selection = self.entry.bank.selection() if self.entry.bank is not None else None
                logits = self.entry.decoder.step(self.pending, self.positions, self.mask, self.cache, selection)
                self.counters.add("kernel_steps")
            else:
                logits = self.entry.model(input_ids=self.pending.unsqueeze(1), attention_mask=self.mask,
                                          position_ids=self.positions.unsqueeze(1), cache=self.cache,
                                          use_cache=True).logits[:, -1]
            tokens = choose_tokens(logits, self.sampling)
        self.positions = self.positions + 1
        self.pending = tokens
        self.counters.decode_step(rows)
        token_list = tokens.tolist()
        self._remove([i for i, row in enumerate(self.rows) if row.accept(token_list[i])])

    def _prefills_in_kernel(self, tokens: int, cache: Any) -> bool:
        """Whether this prefill of `tokens` prompt tokens in all runs in the packed kernel (short ones: what is
        left of prompts that start like a cached one), LoRA rows included."""
        decoder = self.entry.decoder
        return decoder is not None and decoder.prefills(tokens, cache) and self._kernel_takes_adapters()

    def _runs_in_kernel(self, rows: int) -> bool:
        """Whether this step can be the packed kernel's whole-model step, the rows' LoRA adapters included."""
        decoder = self.entry.decoder
        return decoder is not None and decoder.accepts(rows, self.cache) and self._kernel_takes_adapters()

    def _kernel_takes_adapters(self) -> bool:
        """Whether the packed kernel can apply the LoRA adapters the bank selected for the rows (none: yes)."""
        assert self.entry.decoder is not None
        return self.entry.bank is None or bool(self.entry.decoder.takes(self.entry.bank.selection()))

    def cancel(self, request_ids: set[str]) -> None:
        for row in self.rows:
            if row.request.request_id in request_ids:
                row.cancel_requested = True

    def fail(self, code: str, message: str) -> None:
        """Fail every row (after an exception left the shared state unknown) and reset."""
        for row in self.rows:
            call_sink(row.sink.on_error, code, message)
            self.release(row)
        self.counters.add("failed", len(self.rows))
        self._reset()

    def _drop_cancelled(self) -> None:
        cancelled = [i for i, row in enumerate(self.rows) if row.cancel_requested]
        for i in cancelled:
            self.rows[i].finish(CANCELLED)
        self.counters.add("cancelled", len(cancelled))
        self._remove(cancelled)

    def _activate_adapters(self, row_adapters: list[str]) -> None:
        if self.entry.bank is not None:
            self.entry.bank.activate(row_adapters, self.device)

    def _remove(self, indices: list[int]) -> None:
        if not indices:
            return
        gone = set(indices)
        for i in indices:
            if self.rows[i].finish_reason in ("stop", "length"):
                self._keep_conversation(i)
            self.release(self.rows[i])
        keep = [i for i in range(len(self.rows)) if i not in gone]
        if not keep:
            self._reset()
            return
        assert self.mask is not None and self.positions is not None and self.pending is not None
        assert self.sampling is not None
        index = torch.tensor(keep, device=self.device)
        self.rows = [self.rows[i] for i in keep]
        self.mask = self.mask.index_select(0, index)
        self.positions = self.positions.index_select(0, index)
        self.pending = self.pending.index_select(0, index)
        needs_top_p = any(row.request.temperature > 0 and row.request.top_p < 1 for row in self.rows)
        self.sampling = self.sampling.select(index, keep, needs_top_p)
        # Columns that only the removed rows attended to (their prompt's head) are dead weight.
        first_live = int(self.mask.any(dim=0).to(torch.int8).argmax())
        self.mask = self.mask[:, first_live:]
        keep_rows(self.cache, index, first_live)
        self._adapters_stale = True

    def _keep_conversation(self, index: int) -> None:
        """Keep a finished row's prompt and reply in the prompt cache: the conversation's next turn starts
        with both."""
        prompts, row = self.entry.prompts, self.rows[index]
        if prompts is None or self.mask is None:
            return
        tokens = row.prompt_ids + row.generated[:-1]  # the last token chosen was never fed back
        columns = self.mask[index].bool()
        if int(columns.sum()) == len(tokens):
            prompts.store(row.adapter, tokens, partial(row_states, self.cache, index, columns))

    def _reset(self) -> None:
        self.rows, self.cache, self.mask = [], None, None
        self.positions = self.pending = None
        self.sampling = None
        self._adapters_stale = True
        if self.entry.bank is not None:
            self.entry.bank.deactivate()
