"""The fast mLSTM recurrence: one autograd Function over a whole sequence.

The published cell (``model.mlstm_cell_step``) takes five products with the weights per
byte. Two of them read the previous hidden state and must run step by step (``h @ Wmh``
and ``m @ Wh``); the three that read only the input are done for the whole sequence before
the loop: ``x @ Wx`` and ``x @ Wmx`` are large matrix products over all B·T rows or, for the
layer that reads the byte embedding, a row gather from 256-row tables
(:func:`byte_input_tables`). Weight norm is applied once per call by the caller
(``MLSTMLayer.effective_weights``), not once per step; once per featurize (prepared_weights.py).

The backward pass is written by hand. Its loop over time only carries the state gradients
back through the two recurrent products; the weight gradients are large products over the
rows (batch × steps) of chunks of about 2,048 rows, made as each chunk of steps finishes,
so only one chunk's per-step gradients is ever held. The forward pass keeps, per byte, the
activated gates (4H), the cell state (H), ``h @ Wmh`` (H), ``x @ Wmx`` (H) and the hidden
state (H, the output anyway): 32·H bytes in fp32, 20·H under bf16 autocast. Nothing is
overwritten, so a retained graph can be backpropagated again (gradcheck does). Without
gradients (featurizing, generating) nothing per step is kept but the output.

Precision: under ``torch.autocast`` (bf16 or fp16) the matrix products run in the autocast
dtype, and the tensors that only feed products are kept in it (the input-side products,
``h @ Wmh``, the activated gates; the first two are product outputs, so this loses nothing).
Gate pre-activations, the cell state, the hidden state carried between steps and the weight
gradients accumulated over row chunks stay in the parameters' dtype (fp32). Outside autocast
everything runs in the parameters' dtype, which makes float64 gradcheck possible.

The code is device-agnostic: on CUDA the products are cuBLAS calls and the loop launches a
dozen small kernels per step.
"""

import ctypes
import platform
from typing import NamedTuple

import torch
from torch import nn
from torch.autograd.function import once_differentiable

from .prepared_weights import prepared_for, step_products

# Rows (batch × steps) per weight-gradient product in backward: enough to run at full
# matrix-multiply speed, few enough that the per-step gradients of a chunk of steps are
# a small fraction of the stored activations.
GRADIENT_CHUNK_ROWS = 2048
# Without gradients, the input-side products are made this many steps at a time, so that
# featurizing a 4,096-unit model does not hold [B, T, 5H] at once.
INFERENCE_BLOCK_STEPS = 32


def reuse_freed_memory() -> bool:
    """Have freed large buffers reused by later allocations instead of returned to the system.

    Each training step allocates and frees the same few hundred MB of [B, T, ...] buffers.
    glibc serves allocations above its mmap threshold with fresh mappings and unmaps them
    when freed, so every step pays a page fault per 4 kB page again: measured ~60 ms per
    128 MB on the 2-core development VM, as long as the matrix product that fills the
    buffer. This keeps all allocations in the heap and the heap from being trimmed.
    It is process-wide and not undone, so programs (train, featurize, benchmark) call it,
    not library code. Returns whether it applied (Linux with glibc only).
    """
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    m_trim_threshold, m_mmap_max = -1, -4  # from glibc's malloc.h
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    return bool(libc.mallopt(m_mmap_max, 0)) and bool(libc.mallopt(m_trim_threshold, 2**31 - 1))


class SequenceOutput(NamedTuple):
    """What a layer returns; the fields of ``model.LayerOutput``."""

    hidden: torch.Tensor  # [B, T, H]
    final_hidden: torch.Tensor  # [B, H]
    final_cell: torch.Tensor  # [B, H]
    cell_sequence: torch.Tensor | None  # [B, T, H]


def product_dtype(device_type: str, parameter_dtype: torch.dtype) -> torch.dtype:
    """The dtype the matrix products run in: autocast's, when it applies to these parameters."""
    if parameter_dtype == torch.float32 and torch.is_autocast_enabled(device_type):
        return torch.get_autocast_dtype(device_type)
    return parameter_dtype


class ByteInput(NamedTuple):
    """A layer input given as bytes [B, T] (int64) and the embedding [256, in] they index.

    The fast recurrence then takes the input-side products from per-byte tables instead
    of multiplying every embedded byte (``ByteLM.encode`` passes this to layer 0).
    """

    tokens: torch.Tensor
    embedding: torch.Tensor


def byte_input_tables(embedding: torch.Tensor, wx: torch.Tensor, wmx: torch.Tensor):
    """``embedding @ Wx`` [256, 4H] and ``embedding @ Wmx`` [256, H]: the input side of every byte value.

    They are tiny, so they are made in the parameters' dtype even under autocast, and the
    rows gathered for a sequence are as exact as the parameters. Gradients reach the
    embedding and the weights through autograd.
    """
    with torch.autocast(embedding.device.type, enabled=False):
        return embedding @ wx, embedding @ wmx


def _mm(a: torch.Tensor, b: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return torch.mm(a.to(dtype), b.to(dtype))


# Whether step products may use oneDNN's prepacked weights on CPU (a switch for benchmarks).
# Packing pays over a sequence of at least PACK_MIN_STEPS steps, and only for products of
# at least PACK_MIN_MACS multiply-adds: oneDNN costs ~25 µs a call, so small products
# (a 16-unit model, one row at H=512) are faster with torch.mm (measured).
PACK_WEIGHTS = True
PACK_MIN_STEPS = 16
PACK_MIN_MACS = 2**21
_PACKING_WORKS: dict[torch.dtype, bool] = {}


def _packing_works(device: torch.device, dtype: torch.dtype) -> bool:
    """oneDNN weight prepacking is there and gives the right answer for ``dtype`` (checked once)."""
    if not PACK_WEIGHTS or device.type != "cpu" or not torch.backends.mkldnn.is_available():
        return False
    if dtype not in _PACKING_WORKS:
        try:
            weight = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], dtype=dtype)  # [out, in]
            packed = torch.ops.mkldnn._reorder_linear_weight(weight, 1)
            result = torch.ops.mkldnn._linear_pointwise(torch.ones(1, 2, dtype=dtype), packed, None, "none", [], "")
            _PACKING_WORKS[dtype] = result.float().tolist() == [[3.0, 7.0, 11.0]]
        except (AttributeError, NotImplementedError, RuntimeError):  # op missing from this build
            _PACKING_WORKS[dtype] = False
    return _PACKING_WORKS[dtype]


class StepProduct:
    """``x @ weight`` for the many small ``x`` [B, in] of a step loop, the weight prepared once.

    ``torch.mm`` re-packs the weight into the BLAS kernel's blocked layout on every call; on
    CPU the weight is instead reordered once into oneDNN's layout (per step 1.3x faster at
    B=64, H=512 and 1.8x at H=4096 in fp32, 3x at B=8, H=1024, measured). Elsewhere, and
    where it does not pay, it is ``torch.mm`` (cuBLAS on CUDA) with the weight cast once.
    """

    def __init__(self, weight: torch.Tensor, dtype: torch.dtype, rows: int, steps: int):
        self.dtype = dtype
        self.packed = None
        # Reordering reads and writes the whole weight (~0.2 s for the 4,096-unit model):
        # worth it over a sequence, not for the one-byte steps of generation.
        worth_it = steps >= PACK_MIN_STEPS and rows * weight.numel() >= PACK_MIN_MACS
        if worth_it and _packing_works(weight.device, dtype):
            self.packed = torch.ops.mkldnn._reorder_linear_weight(weight.t().contiguous().to(dtype), rows)
        else:
            self.weight = weight.to(dtype)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.dtype)
        if self.packed is not None:
            return torch.ops.mkldnn._linear_pointwise(x, self.packed, None, "none", [], "")
        return torch.mm(x, self.weight)


# PyTorch's CPU tanh is ~6x slower than its sigmoid on large tensors (83 vs 14 µs for
# 64 × 512 floats, measured), so from this many elements on tanh is taken as
# 2·sigmoid(2x) − 1, 3x faster; below it the four calls cost more than they save.
SIGMOID_TANH_MIN_ELEMENTS = 8192


def _sigmoid_tanh(x: torch.Tensor) -> bool:
    return x.device.type == "cpu" and x.numel() >= SIGMOID_TANH_MIN_ELEMENTS


def _tanh_(x: torch.Tensor) -> torch.Tensor:
    """tanh in place (see SIGMOID_TANH_MIN_ELEMENTS)."""
    return x.mul_(2).sigmoid_().mul_(2).sub_(1) if _sigmoid_tanh(x) else x.tanh_()


def _tanh(x: torch.Tensor) -> torch.Tensor:
    """tanh into a new tensor (see SIGMOID_TANH_MIN_ELEMENTS)."""
    return torch.mul(x, 2).sigmoid_().mul_(2).sub_(1) if _sigmoid_tanh(x) else torch.tanh(x)


def _cell_forward(z, c_prev, c_out, h_out, hold) -> None:
    """Activate pre-activations ``z`` [B, 4H] (i, f, o, u) in place; write the new cell and hidden state.

    ``hold`` (unit, value) replaces that unit's new cell value before the output reads it.
    """
    size = c_prev.shape[1]
    z[:, : 3 * size].sigmoid_()
    _tanh_(z[:, 3 * size :])
    i, f, o, u = z.chunk(4, dim=1)
    torch.mul(i, u, out=c_out)
    c_out.addcmul_(f, c_prev)
    if hold is not None:
        c_out[:, hold[0]] = hold[1]
    torch.mul(o, _tanh(c_out), out=h_out)


def _cell_backward(gates, c, c_prev, dh, dc, hold, dz) -> torch.Tensor:
    """Write d(pre-activations) to ``dz`` [B, 4H] from activated ``gates``; return d(previous cell).

    ``dc`` is the gradient reaching the new cell state from later steps and is consumed.
    """
    i, f, o, u = gates.chunk(4, dim=1)
    d_i, d_f, d_o, d_u = dz.chunk(4, dim=1)
    tanh_c = _tanh(c)
    # through h = o * tanh(c)
    dc.addcmul_(dh * o, 1 - tanh_c * tanh_c)
    if hold is not None:
        dc[:, hold[0]] = 0  # a held unit's value depends on nothing
    torch.mul(dh, tanh_c, out=d_o).mul_(o * (1 - o))
    # through c = f * c_prev + i * u
    torch.mul(dc, c_prev, out=d_f).mul_(f * (1 - f))
    torch.mul(dc, u, out=d_i).mul_(i * (1 - i))
    torch.mul(dc, i, out=d_u).mul_(1 - u * u)
    return dc * f


class _Resets(NamedTuple):
    keep: torch.Tensor | None  # [B, T, 1]: 0 where a row's state is zeroed before step t
    steps: frozenset  # the steps where some row resets

    @classmethod
    def plan(cls, reset: torch.Tensor | None, dtype: torch.dtype) -> "_Resets":
        if reset is None:
            return cls(None, frozenset())
        steps = frozenset(torch.nonzero(reset.any(dim=0)).flatten().tolist())  # one device sync per call
        return cls((~reset).to(dtype).unsqueeze(2) if steps else None, steps)

    def block(self, start: int, stop: int) -> "_Resets":
        keep = None if self.keep is None else self.keep[:, start:stop]
        return _Resets(keep, frozenset(t - start for t in self.steps if start <= t < stop))


def _input_side(source, w_gates, w_mult, b, compute_dtype, state_dtype):
    """(x @ Wx [B, T, 4H], x @ Wmx [B, T, H], bias still to add per step or None): fresh buffers.

    ``source`` is dense inputs [B, T, in], or bytes [B, T] (int64) indexing the tables of
    :func:`byte_input_tables`. Without autocast the bias is added here, so the gate buffer
    holds the pre-activations and the loop activates them in place; under autocast the
    buffer is in the product dtype and the bias is added per step in full precision.
    """
    folded = compute_dtype == state_dtype
    if not source.is_floating_point():
        gate_table = (w_gates + b) if folded else w_gates.to(compute_dtype)
        x_gates = nn.functional.embedding(source, gate_table)
        x_mult = nn.functional.embedding(source, w_mult.to(compute_dtype))
    else:
        batch, steps, _ = source.shape
        flat = source.reshape(batch * steps, -1)
        if folded:
            x_gates = torch.addmm(b, flat, w_gates)
        else:
            x_gates = _mm(flat, w_gates, compute_dtype)
        x_gates, x_mult = x_gates.view(batch, steps, -1), _mm(flat, w_mult, compute_dtype).view(batch, steps, -1)
    return x_gates, x_mult, None if folded else b


def _recur(x_gates, x_mult, step_bias, products, hidden, cell, resets, hold, out, mult_hidden=None):
    """The step loop from state (hidden, cell). Returns the final (hidden, cell).

    ``products`` are the :class:`StepProduct` of Wh and Wmh.
    Writes each step's hidden state to ``out.hidden[:, t]`` and cell state to
    ``out.cell_sequence[:, t]`` (when there is one; else a two-slot ring is used). For
    backward, ``mult_hidden`` receives ``h @ Wmh`` and ``x_gates`` the activated gates.
    """
    steps = x_gates.shape[1]
    wh_product, wmh_product = products
    ring = None if out.cell_sequence is not None else cell.new_empty(2, *cell.shape)
    for t in range(steps):
        if t in resets.steps:
            hidden, cell = hidden * resets.keep[:, t], cell * resets.keep[:, t]
        mult = wmh_product(hidden)
        if mult_hidden is not None:
            mult_hidden[:, t] = mult
        if step_bias is None:  # same dtype: the gate buffer is activated in place
            z = x_gates[:, t]
            z += wh_product(x_mult[:, t] * mult)
        else:
            z = x_gates[:, t] + step_bias
            z += wh_product(x_mult[:, t] * mult)
        cell_out = out.cell_sequence[:, t] if ring is None else ring[t % 2]
        _cell_forward(z, cell, cell_out, out.hidden[:, t], hold)
        if step_bias is not None and mult_hidden is not None:
            x_gates[:, t] = z
        hidden, cell = out.hidden[:, t], cell_out
    return hidden, cell


class _Saved(NamedTuple):
    """What the forward pass keeps for backward ([B, T, ...] unless said otherwise)."""

    source: torch.Tensor  # dense inputs [B, T, in] or bytes [B, T]
    w_gates: torch.Tensor  # Wx [in, 4H], or the per-byte table [256, 4H]
    w_mult: torch.Tensor  # Wmx [in, H], or the per-byte table [256, H]
    wh: torch.Tensor
    wmh: torch.Tensor
    h0: torch.Tensor  # [B, H]
    c0: torch.Tensor  # [B, H]
    keep: torch.Tensor | None  # [B, T, 1], see _Resets
    gates: torch.Tensor  # activated i, f, o, u [B, T, 4H]
    x_mult: torch.Tensor  # x @ Wmx
    mult_hidden: torch.Tensor  # h_prev @ Wmh
    cells: torch.Tensor
    hiddens: torch.Tensor


class MLSTMRecurrence(torch.autograd.Function):
    """Forward and hand-written backward of the mLSTM over a whole sequence (see module doc)."""

    @staticmethod
    def forward(ctx, source, w_gates, w_mult, b, wh, wmh, h0, c0, reset, compute_dtype, hold):
        with torch.autocast(h0.device.type, enabled=False):
            resets = _Resets.plan(reset, h0.dtype)
            x_gates, x_mult, step_bias = _input_side(source, w_gates, w_mult, b, compute_dtype, h0.dtype)
            batch, steps, size = x_mult.shape
            hiddens = h0.new_empty(batch, steps, size)
            out = SequenceOutput(hiddens, None, None, torch.empty_like(hiddens))
            mult_hidden = torch.empty_like(x_mult)
            products = (StepProduct(wh, compute_dtype, batch, steps), StepProduct(wmh, compute_dtype, batch, steps))
            final_h, final_c = _recur(x_gates, x_mult, step_bias, products, h0, c0, resets, hold, out, mult_hidden)
        kept = (resets.keep, x_gates, x_mult, mult_hidden, out.cell_sequence, hiddens)
        ctx.save_for_backward(*_Saved(source, w_gates, w_mult, wh, wmh, h0, c0, *kept))
        ctx.reset_steps, ctx.hold = resets.steps, hold
        # Unused outputs (the cell sequence, usually) then get no zero-filled gradient.
        ctx.set_materialize_grads(False)
        return hiddens, final_h.clone(), final_c.clone(), out.cell_sequence

    @staticmethod
    @once_differentiable
    def backward(ctx, d_hiddens, d_final_h, d_final_c, d_cells):
        saved = _Saved(*ctx.saved_tensors)
        resets = _Resets(saved.keep, ctx.reset_steps)
        with torch.autocast(saved.h0.device.type, enabled=False):
            needs_source_grad = ctx.needs_input_grad[0]
            grads = _backward(saved, d_hiddens, d_final_h, d_final_c, d_cells, resets, ctx.hold, needs_source_grad)
        return (*grads, None, None, None)  # nothing for reset, compute_dtype, hold


class _Gradients(NamedTuple):
    """In the order of the tensor inputs of ``MLSTMRecurrence.forward``."""

    source: torch.Tensor | None
    w_gates: torch.Tensor
    w_mult: torch.Tensor
    b: torch.Tensor
    wh: torch.Tensor
    wmh: torch.Tensor
    h0: torch.Tensor
    c0: torch.Tensor


def _backward(saved: _Saved, d_hiddens, d_final_h, d_final_c, d_cells, resets, hold, needs_source_grad) -> _Gradients:
    """Backward through time, in chunks of steps; each finished chunk's weight gradients are
    then one product over its (batch × steps) rows, so only a chunk of per-step gradients
    is ever held."""
    gates, x_mult, cells, h0, c0 = saved.gates, saved.x_mult, saved.cells, saved.h0, saved.c0
    batch, steps, size = x_mult.shape
    compute_dtype, state_dtype = x_mult.dtype, h0.dtype
    wh_back = StepProduct(saved.wh.t(), compute_dtype, batch, steps)
    wmh_back = StepProduct(saved.wmh.t(), compute_dtype, batch, steps)
    grads = _Gradients(
        torch.empty_like(saved.source) if needs_source_grad and saved.source.is_floating_point() else None,
        *(torch.zeros_like(t) for t in (saved.w_gates, saved.w_mult)),
        gates.new_zeros(gates.shape[2], dtype=state_dtype),
        *(torch.zeros_like(t) for t in (saved.wh, saved.wmh)),
        None,
        None,
    )
    dh = d_final_h.clone() if d_final_h is not None else torch.zeros_like(h0)
    dc = d_final_c.clone() if d_final_c is not None else torch.zeros_like(c0)
    chunk = min(steps, -(-GRADIENT_CHUNK_ROWS // batch))
    # Per-step gradients of the chunk: pre-activations, m, and h_prev @ Wmh.
    d_gates = gates.new_empty(batch, chunk, 4 * size)
    d_mult, d_mult_hidden = x_mult.new_empty(batch, chunk, size), x_mult.new_empty(batch, chunk, size)
    dz_full = None if compute_dtype == state_dtype else h0.new_empty(batch, 4 * size)
    for stop in range(steps, 0, -chunk):
        start = max(stop - chunk, 0)
        for t in reversed(range(start, stop)):
            k = t - start
            if d_hiddens is not None:
                dh = dh + d_hiddens[:, t]
            if d_cells is not None:
                dc = dc + d_cells[:, t]
            c_prev = cells[:, t - 1] if t > 0 else c0
            if t in resets.steps:
                c_prev = c_prev * resets.keep[:, t]
            if dz_full is None:
                dc = _cell_backward(gates[:, t], cells[:, t], c_prev, dh, dc, hold, d_gates[:, k])
            else:  # gates kept in the product dtype: the gate math runs in full precision
                dc = _cell_backward(gates[:, t].to(state_dtype), cells[:, t], c_prev, dh, dc, hold, dz_full)
                d_gates[:, k] = dz_full
            dm = wh_back(d_gates[:, k])
            d_mult[:, k] = dm
            torch.mul(x_mult[:, t], dm, out=d_mult_hidden[:, k])
            dh = wmh_back(d_mult_hidden[:, k]).to(state_dtype)
            if t in resets.steps:
                dh, dc = dh * resets.keep[:, t], dc * resets.keep[:, t]
        count = stop - start
        chunk_gradients = (buffer[:, :count] for buffer in (d_gates, d_mult, d_mult_hidden))
        _accumulate_chunk(saved, grads, resets.keep, slice(start, stop), *chunk_gradients)
    return grads._replace(h0=dh, c0=dc)


def _flat(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.reshape(-1, tensor.shape[-1])


def _accumulate_chunk(saved: _Saved, grads: _Gradients, keep, steps: slice, d_gates, d_mult, d_mult_hidden) -> None:
    """Add one chunk of steps' share to the weight (and input) gradients, as products over its rows."""
    dtype = d_gates.dtype
    d_gates_rows = _flat(d_gates)
    mult_hidden = saved.mult_hidden[:, steps]
    grads.wh.add_(_mm(_flat(saved.x_mult[:, steps] * mult_hidden).t(), d_gates_rows, dtype))
    # The hidden state each step read: the previous output (h0 first), zeroed where reset.
    if steps.start == 0:
        h_prev = torch.cat([saved.h0.unsqueeze(1), saved.hiddens[:, : steps.stop - 1]], dim=1)
    else:
        h_prev = saved.hiddens[:, steps.start - 1 : steps.stop - 1]
    if keep is not None:
        h_prev = h_prev * keep[:, steps]
    grads.wmh.add_(_mm(_flat(h_prev).t(), _flat(d_mult_hidden), dtype))
    # Summed in the gradients' dtype (the reduction accumulates in fp32 either way).
    grads.b.add_(d_gates_rows.sum(0))
    d_x_mult_rows = _flat(d_mult * mult_hidden)
    source = saved.source[:, steps]
    if not source.is_floating_point():
        index = source.reshape(-1)
        grads.w_gates.index_add_(0, index, d_gates_rows.to(grads.w_gates.dtype))
        grads.w_mult.index_add_(0, index, d_x_mult_rows.to(grads.w_mult.dtype))
        return
    x_rows = _flat(source)
    grads.w_gates.add_(_mm(x_rows.t(), d_gates_rows, dtype))
    grads.w_mult.add_(_mm(x_rows.t(), d_x_mult_rows, dtype))
    if grads.source is not None:
        d_x = _mm(d_gates_rows, saved.w_gates.t(), dtype).to(source.dtype)
        d_x += _mm(d_x_mult_rows, saved.w_mult.t(), dtype)
        grads.source[:, steps] = d_x.view(source.shape)


def mlstm_sequence(
    source, w_gates, w_mult, b, wh, wmh, hidden, cell, reset=None, return_cell_sequence=False, hold=None, kept_products=None
) -> SequenceOutput:
    """Run the mLSTM over a sequence from state (hidden, cell) [B, H]; see the module doc.

    ``source`` is dense inputs [B, T, in] with (w_gates, w_mult) = (Wx, Wmx), or bytes
    [B, T] (int64) with (w_gates, w_mult) the tables of :func:`byte_input_tables`.
    ``reset`` [B, T] (bool) zeroes a row's state before it reads step t; ``hold`` (unit,
    value) holds one cell unit at a value (steered generation); ``kept_products``: see prepared_weights.
    """
    batch, steps = source.shape[:2]
    if steps == 0:
        empty = hidden.new_zeros(batch, 0, hidden.shape[1])
        return SequenceOutput(empty, hidden, cell, empty.clone() if return_cell_sequence else None)
    # The state is carried in the parameters' dtype whatever a caller under autocast passes.
    hidden, cell = hidden.to(wh.dtype), cell.to(wh.dtype)
    compute_dtype = product_dtype(hidden.device.type, wh.dtype)
    tensors = (source, w_gates, w_mult, b, wh, wmh, hidden, cell)
    if torch.is_grad_enabled() and any(t.requires_grad for t in tensors):
        hiddens, final_h, final_c, cells = MLSTMRecurrence.apply(*tensors, reset, compute_dtype, hold)
        return SequenceOutput(hiddens, final_h, final_c, cells if return_cell_sequence else None)
    with torch.no_grad(), torch.autocast(hidden.device.type, enabled=False):
        resets = _Resets.plan(reset, hidden.dtype)
        out = SequenceOutput(
            hidden.new_empty(batch, steps, hidden.shape[1]),
            None,
            None,
            hidden.new_empty(batch, steps, hidden.shape[1]) if return_cell_sequence else None,
        )
        products = step_products(kept_products, (compute_dtype, batch, steps >= PACK_MIN_STEPS), lambda: (
            StepProduct(wh, compute_dtype, batch, steps), StepProduct(wmh, compute_dtype, batch, steps)))
        for start in range(0, steps, INFERENCE_BLOCK_STEPS):
            block = slice(start, min(start + INFERENCE_BLOCK_STEPS, steps))
            x_gates, x_mult, step_bias = _input_side(source[:, block], w_gates, w_mult, b, compute_dtype, hidden.dtype)
            block_out = SequenceOutput(
                out.hidden[:, block], None, None, None if out.cell_sequence is None else out.cell_sequence[:, block]
            )
            resets_block = resets.block(block.start, block.stop)
            hidden, cell = _recur(x_gates, x_mult, step_bias, products, hidden, cell, resets_block, hold, block_out)
        return out._replace(final_hidden=hidden.clone(), final_cell=cell.clone())


def mlstm_layer_forward(layer, inputs, hidden, cell, reset, return_cell_sequence, overwrite) -> SequenceOutput:
    """``MLSTMLayer.forward`` with this recurrence (registered as the ``"fast"`` implementation)."""
    weights, kept_products = prepared_for(layer)
    hold = None if overwrite is None else (overwrite.unit, float(overwrite.value))
    if isinstance(inputs, ByteInput) and inputs.tokens.numel() < inputs.embedding.shape[0]:
        # Fewer bytes than table rows (generating byte by byte): multiplying them is less work.
        inputs = nn.functional.embedding(inputs.tokens, inputs.embedding)
    if isinstance(inputs, ByteInput):
        source = inputs.tokens
        w_gates, w_mult = byte_input_tables(inputs.embedding, weights.wx, weights.wmx)
    else:
        source, w_gates, w_mult = inputs, weights.wx, weights.wmx
    return mlstm_sequence(
        source, w_gates, w_mult, weights.b, weights.wh, weights.wmh, hidden, cell, reset, return_cell_sequence, hold,
        kept_products,
    )
