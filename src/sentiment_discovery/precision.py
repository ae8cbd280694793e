"""The precision of the matrix products, chosen for the hardware at hand.

Every command that multiplies matrices (train, transfer, featurize, classify, visualize,
benchmark) and the Python API take one of :data:`PRECISIONS`. ``auto``, the default, runs
the products in bfloat16 where the device does so natively and faster than in float32, and
in float32 otherwise: a CPU without native bf16 (no AVX-512 BF16 or AMX, e.g. AMD Zen 3)
runs a bf16 product 50-170x slower than fp32, because every product is emulated.

- CUDA: bf16 where ``torch.cuda.is_bf16_supported(including_emulation=False)``.
- CPU: bf16 where oneDNN reports native bf16 and a tiny product (a few milliseconds, timed
  once per process) confirms that bf16 is the faster one.

The decision is made once per process and device and printed once as a notice. An explicit
``bf16`` or ``fp16`` on hardware without it runs as asked, after a one-line warning that
names the measured slowdown. Only the products run in the low precision (autocast); the
recurrent state, the features, the loss and the weights stay float32.

:data:`PRECISIONS` itself lives in :mod:`sentiment_discovery.foundation.choices`, which the command line
reads to build its flags without importing torch.
"""

import time

import torch

from .foundation import log
from .foundation.choices import PRECISIONS
from .foundation.errors import UserError

# The product timed to confirm a CPU's native bf16: ~0.1-0.4 ms per run on one core.
PROBE_SHAPE = (64, 256, 1024)  # [rows, inner] x [inner, columns]
PROBE_RUNS = 5

# device -> the precision "auto" chose on it, decided once per process.
_auto_choices: dict[str, str] = {}
# (precision, device) pairs already warned about.
_warned: set[tuple[str, str]] = set()


def _device_key(device) -> str:
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    return str(device)


def native_support(precision: str, device) -> bool:
    """Whether ``device`` runs ``precision`` ("bf16" or "fp16") products in hardware."""
    device = torch.device(device)
    if device.type == "cuda":
        if precision == "bf16":
            return torch.cuda.is_bf16_supported(including_emulation=False)
        return True  # every GPU that current torch builds support has fp16 units
    if device.type == "cpu":
        if precision == "bf16":
            return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
        return bool(torch.ops.mkldnn._is_mkldnn_fp16_supported())
    return False


def product_seconds(precision: str, device) -> float:
    """The fastest of a few runs of the probe product in ``precision``, on one thread.

    One thread, because the ratio between precisions is what matters and a second
    thread only adds noise when another job holds a core.
    """
    device = torch.device(device)
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    rows, inner, columns = PROBE_SHAPE
    generator = torch.Generator().manual_seed(0)
    left = torch.randn(rows, inner, generator=generator).to(device, dtype)
    right = torch.randn(inner, columns, generator=generator).to(device, dtype)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.no_grad():
            torch.mm(left, right)  # the first run builds the kernel
            best = float("inf")
            for _ in range(PROBE_RUNS):
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                started = time.perf_counter()
                torch.mm(left, right)
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                best = min(best, time.perf_counter() - started)
    finally:
        torch.set_num_threads(threads)
    return best


def _auto_choice(device) -> tuple[str, str]:
    """(precision, why) for ``auto`` on ``device``."""
    device = torch.device(device)
    if device.type == "cuda":
        if native_support("bf16", device):
            return "bf16", "this GPU has native bf16"
        return "fp32", "this GPU has no native bf16"
    if device.type != "cpu":
        return "fp32", f"no low precision is known to be faster on {device.type}"
    if not native_support("bf16", device):
        return "fp32", "this CPU has no native bf16: emulated, bf16 products run 50-170x slower than fp32"
    speedup = product_seconds("fp32", device) / product_seconds("bf16", device)
    if speedup > 1.0:
        return "bf16", f"native on this CPU: a bf16 product ran {speedup:.1f}x faster than fp32"
    return "fp32", f"bf16 is native on this CPU but a bf16 product ran {1 / speedup:.1f}x slower than fp32"


def resolve_precision(requested: str, device) -> str:
    """The precision to run: "fp32", "bf16" or "fp16".

    ``auto`` is decided once per process and device (a notice says what and why); an
    explicit ``bf16``/``fp16`` that the hardware lacks gets one warning per process and
    runs as asked; an unknown name is a :class:`UserError`.
    """
    if requested not in PRECISIONS:
        raise UserError(f"-precision must be one of {', '.join(PRECISIONS)}, not {requested!r}")
    if requested == "fp32":
        return "fp32"
    key = _device_key(device)
    if requested == "auto":
        if key not in _auto_choices:
            choice, why = _auto_choice(device)
            _auto_choices[key] = choice
            log.notice(f"-precision auto: {choice} products on {key} ({why})")
        return _auto_choices[key]
    if (requested, key) not in _warned and not native_support(requested, device):
        _warned.add((requested, key))
        log.warning(f"{_slowdown(requested, device)}; use -precision auto (or fp32) to avoid it")
    return requested


def _slowdown(precision: str, device) -> str:
    if torch.device(device).type != "cpu":
        return f"{_device_key(device)} has no native {precision}: its {precision} products are emulated and slow"
    ratio = product_seconds(precision, device) / product_seconds("fp32", device)
    return f"this CPU has no native {precision}: a {precision} product ran {ratio:.0f}x slower than fp32 here"


def autocast_dtype(precision: str):
    """The torch dtype of a resolved precision's products: None for fp32."""
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def products_autocast(precision: str, device):
    """The autocast context that runs the matrix products in ``precision`` (fp32: disabled).

    ``precision`` is resolved first (:func:`resolve_precision`), so "auto" may be passed.
    """
    dtype = autocast_dtype(resolve_precision(precision, device))
    return torch.autocast(torch.device(device).type, dtype=dtype or torch.bfloat16, enabled=dtype is not None)
