"""Precision of the matrix products: the names every command accepts and what ``auto`` means here."""

import contextlib

import torch

from .errors import UserError

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
_AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_precision(requested: str, device: torch.device | str) -> str:
    """``fp32``, ``bf16`` or ``fp16``: ``auto`` is bf16 where the device has native bf16 units, else fp32."""
    if requested not in PRECISIONS:
        raise UserError(f"precision must be one of {', '.join(PRECISIONS)}, not {requested!r}")
    if requested != "auto":
        return requested
    device = torch.device(device)
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if torch.ops.mkldnn._is_mkldnn_bf16_supported() else "fp32"


def products_autocast(precision: str, device: torch.device | str):
    """The context in which the products run in ``precision`` (a resolved one); fp32: no autocast."""
    if precision == "auto":
        raise UserError("resolve -precision auto with resolve_precision() first")
    if precision not in PRECISIONS:
        raise UserError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=_AUTOCAST_DTYPES[precision])
