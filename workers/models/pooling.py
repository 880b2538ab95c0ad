"""Sentence-embedding pooling, shared by the engine (embeddings, retrieval) and training (evaluation), so a
tuned model is measured exactly as it is served."""

from __future__ import annotations

import torch


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """(B, T, H) states and a (B, T) mask -> (B, H) unit vectors in float32: the mean over real tokens,
    L2-normalised (sentence-transformers' pooling for all-MiniLM-L6-v2)."""
    hidden = hidden.float()
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return torch.nn.functional.normalize((hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1), dim=-1)
