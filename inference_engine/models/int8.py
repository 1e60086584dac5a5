"""Weight-only int8 linears (`--weights int8`): per-output-channel symmetric scales.

Each `nn.Linear` of the model becomes an `Int8Linear` holding int8 weights `[out, in]` and
one scale per output row; activations stay in the model's dtype. On the CPU (and MPS) the
product runs `torch._weight_int8pack_mm`, which reads half the bytes of bfloat16 (decode is
bound by weight reads) and gives a row the same bits at any row count (so the decode step
runs unpadded). Where that op is missing the weights are dequantized per call: the same
numbers, slower. Outputs stay within a stated tolerance of bfloat16 (tested).
"""

from __future__ import annotations

from typing import cast

import torch
from torch import nn

_INT8_MAX = 127


class Int8Linear(nn.Module):
    """`y = x @ (q * scale).T` with `q` int8 `[out, in]` and `scale` `[out]`; no bias."""

    weight: torch.Tensor
    scale: torch.Tensor

    def __init__(self, weight: torch.Tensor, scale: torch.Tensor) -> None:
        super().__init__()
        self.in_features = weight.shape[1]
        self.out_features = weight.shape[0]
        self.register_buffer("weight", weight)
        self.register_buffer("scale", scale)
        self.fused = _int8pack_runs(weight, scale)

    @classmethod
    def quantize(cls, linear: nn.Linear) -> Int8Linear:
        """Symmetric per-row quantization of `linear.weight` (scales in its dtype)."""
        weight = linear.weight.detach().float()
        scale = weight.abs().amax(dim=1).clamp(min=1e-12) / _INT8_MAX  # [out]
        quantized = torch.round(weight / scale[:, None]).clamp(-_INT8_MAX, _INT8_MAX)
        dtype = linear.weight.dtype
        return cls(quantized.to(torch.int8).contiguous(), scale.to(dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, self.in_features)  # [rows, in]
        if self.fused:
            out = torch._weight_int8pack_mm(rows, self.weight, self.scale)
        else:
            out = rows @ (self.weight.to(x.dtype) * self.scale[:, None]).T
        return out.reshape(*x.shape[:-1], self.out_features)


def _int8pack_runs(weight: torch.Tensor, scale: torch.Tensor) -> bool:
    """Whether this build has the fused op for this device and dtype."""
    try:
        probe = torch.zeros((1, weight.shape[1]), dtype=scale.dtype, device=weight.device)
        torch._weight_int8pack_mm(probe, weight, scale)
    except (RuntimeError, NotImplementedError, AttributeError):
        return False
    return True


def quantize_linears(model: nn.Module) -> int:
    """Replace every `nn.Linear` without a bias by an `Int8Linear`; return how many.

    A tied LM head gets its own int8 copy (the embedding stays in the model's dtype).
    """
    targets = [
        (parent, name, child)
        for parent in model.modules()
        for name, child in parent.named_children()
        if isinstance(child, nn.Linear) and child.bias is None
    ]
    for parent, name, child in targets:
        setattr(parent, name, Int8Linear.quantize(cast(nn.Linear, child)))
    return len(targets)


__all__ = ["Int8Linear", "quantize_linears"]
