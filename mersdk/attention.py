"""The reference masked multi-head attention: the oracle for the fused kernel (``mersdk.ops``) and
the op the model runs when no kernel applies. It lives below both ``ops`` and ``model`` so neither
imports back up."""

from __future__ import annotations

import math

import torch


def masked_attention(q, k, v, key_mask):
    """Reference multi-head attention with a key padding mask.

    q: (B, H, Tq, D); k, v: (B, H, Tk, D); key_mask: (B, Tk) bool, True = valid key.
    Rows whose keys are all masked return zeros (not NaN). This is the oracle for the fused kernel.
    """
    scale = 1.0 / math.sqrt(q.shape[-1])
    scores = torch.matmul(q, k.transpose(-1, -2)) * scale
    mask = key_mask[:, None, None, :]
    scores = scores.masked_fill(~mask, float("-inf"))
    # max over valid keys; all-masked rows get 0 so exp() below stays finite
    row_max = scores.amax(dim=-1, keepdim=True)
    row_max = torch.where(torch.isfinite(row_max), row_max, torch.zeros_like(row_max))
    p = torch.exp(scores - row_max) * mask
    denom = p.sum(dim=-1, keepdim=True).clamp_min(torch.finfo(p.dtype).tiny)
    return torch.matmul(p / denom, v)
