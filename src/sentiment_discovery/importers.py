"""Published weights -> a :class:`ByteLM`: OpenAI's release and the 2017 PyTorch reproduction.

Every published layout is mapped onto the model here, in one place:
- OpenAI's release, a folder of ``0.npy`` ... ``14.npy`` (TensorFlow, weights [in, out] as
  ours, weight norm kept as the release's direction and gains);
- the third-party PyTorch port's NumPy export of the same weights (``embd.npy``, ``wx.npy``,
  ..., weight norm already folded in);
- the 2017 PyTorch reproduction's checkpoints, its first release (a flat state dict) and
  its later one (a nested ``encoder``/``decoder`` dict, gates in PyTorch's i, f, g, o order).

Everything is checked before the model is allocated, so a bad input is one
:class:`UserError` naming the file and tensor. Tensors are copied one at a time into an
uninitialised model (the .npy files memory-mapped), so an import holds little more than the
model itself, and saving it about as much again.

Why this module is long: each layout is a short mapping, but they share the checks (shapes,
gate orders, weight norm) and the one-tensor-at-a-time copy; keeping every published layout
in one place is the point of the module (a new layout is added beside the others).
"""

import argparse
import dataclasses
import pickle
import re
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from tqdm.auto import tqdm

from .checkpoint import CONFIG_FILE, save_model
from .foundation.choices import GATE_LAYOUTS  # how a first-release mLSTM's gate blocks are laid out
from .foundation.errors import UserError
from .foundation.text import NVIDIA_2017_TEXT_OPTIONS, OPENAI_TEXT_OPTIONS, TextOptions
from .model import VOCAB_SIZE, ByteLM, ModelConfig

OPENAI_SENTIMENT_UNIT = 2388

# OpenAI's files in order: what each holds and its shape (V bytes, E embedding, H units).
OPENAI_RELEASE = (
    ("embedding", ("V", "E")),
    ("wx", ("E", "4H")),
    ("wh input-gate block", ("H", "H")),
    ("wh forget-gate block", ("H", "H")),
    ("wh output-gate block", ("H", "H")),
    ("wh update block", ("H", "H")),
    ("wmx", ("E", "H")),
    ("wmh", ("H", "H")),
    ("b", ("4H",)),
    ("gx", ("4H",)),
    ("gh", ("4H",)),
    ("gmx", ("H",)),
    ("gmh", ("H",)),
    ("output w", ("H", "V")),
    ("output b", ("V",)),
)

# The port's export, in the orientation its own loader reads ([in, out], transposed into
# nn.Linear); exports in PyTorch's [out, in] orientation are recognised from the shapes too.
PORT_EXPORT = (
    ("embd", ("V", "E")),
    ("wx", ("E", "4H")),
    ("wh", ("H", "4H")),
    ("b0", ("4H",)),
    ("wmx", ("E", "H")),
    ("wmh", ("H", "H")),
    ("w", ("H", "V")),
    ("b", ("V",)),
)

# The 2017 reproduction's text preparation (docs/importing.md): its process_str and transform.
PYTORCH_TEXT_OPTIONS = NVIDIA_2017_TEXT_OPTIONS

# The later release orders an mLSTM's gates i, f, g, o (PyTorch's LSTMCell); ours are i, f, o, u.
LATER_TO_OUR_GATES = (0, 1, 3, 2)

def _shape_of(template: tuple[str, ...], sizes: dict[str, int]) -> tuple[int, ...]:
    return tuple(sizes[name] for name in template)


# --------------------------------------------------------------------------- building


class _ModelFiller:
    """Copies source tensors into an uninitialised model and checks that nothing is left unset."""
    def __init__(self, config: ModelConfig, text_options: TextOptions, progress: bool, desc: str):
        with torch.device("meta"):
            model = ByteLM(config, text_options)
        # Real memory, never initialised: every parameter is overwritten from the source.
        self.model = model.to_empty(device="cpu").eval()
        self.parameters = dict(self.model.state_dict())
        self.unset = set(self.parameters)
        total = sum(t.numel() * t.element_size() for t in self.parameters.values())
        self.bar = tqdm(total=total, unit="B", unit_scale=True, desc=desc, disable=not progress)

    def copy(self, name: str, value, columns: slice | None = None) -> None:
        """``parameters[name][:, columns] = value`` (numpy array or tensor, shape already checked)."""
        target = self.parameters[name].detach()
        if columns is not None:
            target = target[:, columns]
        if isinstance(value, np.ndarray):
            # Assigning from a memory-mapped array streams it in without a whole extra copy.
            target.numpy()[...] = value
        else:
            target.copy_(value)
        self.unset.discard(name)
        self.bar.update(target.numel() * target.element_size())

    def finish(self, metadata: dict) -> ByteLM:
        self.bar.close()
        if self.unset:  # a mapping that missed a parameter would leave uninitialised memory
            raise RuntimeError(f"importer left parameters unset: {', '.join(sorted(self.unset))}")
        self.model.metadata = metadata
        return self.model


def _float_array(path: Path, label: str) -> np.ndarray:
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise UserError(f"{path} ({label}) is truncated or not a .npy array ({_first_line(error)})") from None
    if not isinstance(array, np.ndarray) or not np.issubdtype(array.dtype, np.floating):
        kind = getattr(array, "dtype", type(array).__name__)
        raise UserError(f"{path} ({label}) holds {kind}, not floating-point numbers")
    return array


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0][:200] if lines else type(error).__name__


def _check_shape(array, template: tuple[str, ...], sizes: dict[str, int], where: str, inferred: str) -> None:
    expected = _shape_of(template, sizes)
    if tuple(array.shape) != expected:
        raise UserError(
            f"{where} has shape {list(array.shape)}, expected [{', '.join(template)}] = {list(expected)} ({inferred})"
        )


# --------------------------------------------------------------------------- OpenAI


def _openai_folder(source: Path) -> tuple[Path, str]:
    """The folder to read and which layout it holds: ``"release"`` or ``"port-export"``."""
    if not source.exists():
        raise UserError(f"{source} does not exist")
    if source.is_file():
        raise UserError(
            f"{source} is a file; import-openai takes the folder holding OpenAI's 0.npy ... 14.npy "
            "(a PyTorch .pt checkpoint is imported with import-pytorch)"
        )
    if (source / CONFIG_FILE).is_file():
        raise UserError(f"{source} is already a model directory; load it with sentiment_discovery.load_model")
    for folder in (source, source / "model"):  # the release's repository keeps them under model/
        numbered = [i for i in range(len(OPENAI_RELEASE)) if (folder / f"{i}.npy").is_file()]
        if numbered:
            missing = [f"{i}.npy" for i in range(len(OPENAI_RELEASE)) if i not in numbered]
            if missing:
                raise UserError(
                    f"{folder} is missing {', '.join(missing)}; OpenAI's release holds 0.npy ... 14.npy"
                )
            return folder, "release"
    port_files = [name for name, _ in PORT_EXPORT]
    present = [name for name in port_files if (source / f"{name}.npy").is_file()]
    if present:
        missing = [f"{name}.npy" for name in port_files if name not in present]
        if missing:
            raise UserError(
                f"{source} is missing {', '.join(missing)} of the port's NumPy export "
                f"({', '.join(n + '.npy' for n in port_files)})"
            )
        return source, "port-export"
    raise UserError(
        f"{source} holds neither OpenAI's release (0.npy ... 14.npy) "
        "nor the port's NumPy export (embd.npy, wx.npy, ...)"
    )


def _release_sizes(folder: Path, arrays: list[np.ndarray]) -> dict[str, int]:
    """E from the embedding (0.npy) and H from the square wmh (7.npy)."""
    embedding, wmh = arrays[0], arrays[7]
    if embedding.ndim != 2 or embedding.shape[0] != VOCAB_SIZE:
        raise UserError(
            f"{folder / '0.npy'} (embedding) has shape {list(embedding.shape)}, expected [{VOCAB_SIZE}, E]"
        )
    if wmh.ndim != 2 or wmh.shape[0] != wmh.shape[1] or wmh.shape[0] == 0:
        raise UserError(f"{folder / '7.npy'} (wmh) has shape {list(wmh.shape)}, expected a square [H, H]")
    return {"V": VOCAB_SIZE, "E": embedding.shape[1], "H": wmh.shape[0], "4H": 4 * wmh.shape[0]}


def _load_release(folder: Path, progress: bool) -> _ModelFiller:
    labels = [label for label, _ in OPENAI_RELEASE]
    arrays = [_float_array(folder / f"{i}.npy", label) for i, label in enumerate(labels)]
    sizes = _release_sizes(folder, arrays)
    inferred = f"E={sizes['E']} from 0.npy, H={sizes['H']} from 7.npy"
    for index, (label, template) in enumerate(OPENAI_RELEASE):
        _check_shape(arrays[index], template, sizes, f"{folder / f'{index}.npy'} ({label})", inferred)
    hidden = sizes["H"]
    config = ModelConfig(embed_size=sizes["E"], rnn_size=hidden, layers=1, weight_norm=True, lstm_only=True)
    filler = _ModelFiller(config, OPENAI_TEXT_OPTIONS, progress, desc="import OpenAI release")
    filler.copy("embedding.weight", arrays[0])
    filler.copy("layers.0.wx", arrays[1])
    for block in range(4):  # wh is stored as its four gate blocks, side by side
        filler.copy("layers.0.wh", arrays[2 + block], columns=slice(block * hidden, (block + 1) * hidden))
    for index, name in ((6, "wmx"), (7, "wmh"), (8, "b"), (9, "wx_g"), (10, "wh_g"), (11, "wmx_g"), (12, "wmh_g")):
        filler.copy(f"layers.0.{name}", arrays[index])
    filler.copy("output.weight", arrays[13].T)
    filler.copy("output.bias", arrays[14])
    return filler


def _load_port_export(folder: Path, progress: bool) -> _ModelFiller:
    arrays = {name: _float_array(folder / f"{name}.npy", name) for name, _ in PORT_EXPORT}
    embedding, bias = arrays["embd"], arrays["b0"]
    if embedding.ndim != 2 or embedding.shape[0] != VOCAB_SIZE:
        raise UserError(f"{folder / 'embd.npy'} has shape {list(embedding.shape)}, expected [{VOCAB_SIZE}, E]")
    if bias.ndim != 1 or bias.shape[0] % 4 or bias.shape[0] == 0:
        raise UserError(f"{folder / 'b0.npy'} has shape {list(bias.shape)}, expected [4H]")
    hidden = bias.shape[0] // 4
    sizes = {"V": VOCAB_SIZE, "E": embedding.shape[1], "H": hidden, "4H": 4 * hidden}
    flips = {name: len(template) == 2 and name != "embd" for name, template in PORT_EXPORT}
    fits = lambda flip: all(  # noqa: E731
        arrays[name].shape == _shape_of(template[::-1] if flip and flips[name] else template, sizes)
        for name, template in PORT_EXPORT
    )
    # An export in PyTorch's [out, in] orientation is recognised by its shapes and transposed.
    transposed = not fits(False) and fits(True)
    ours = {name: array.T if transposed and flips[name] else array for name, array in arrays.items()}
    inferred = f"E={sizes['E']} from embd.npy, H={hidden} from b0.npy"
    for name, template in PORT_EXPORT:
        _check_shape(ours[name], template, sizes, str(folder / f"{name}.npy"), inferred)
    config = ModelConfig(embed_size=sizes["E"], rnn_size=hidden, layers=1)
    filler = _ModelFiller(config, OPENAI_TEXT_OPTIONS, progress, desc="import port export")
    filler.copy("embedding.weight", ours["embd"])
    for name, theirs in (("wx", "wx"), ("wh", "wh"), ("b", "b0"), ("wmx", "wmx"), ("wmh", "wmh")):
        filler.copy(f"layers.0.{name}", ours[theirs])
    filler.copy("output.weight", ours["w"].T)
    filler.copy("output.bias", ours["b"])
    return filler


def load_openai_weights(source: str | Path, progress: bool = False) -> ByteLM:
    """A model from OpenAI's release folder (``0.npy`` ... ``14.npy``) or the port's NumPy export.

    Any hidden size works: E and H are read from the shapes. The metadata records the
    release's sentiment unit (2388) when the model is large enough to have it.
    """
    folder, layout = _openai_folder(Path(source))
    filler = _load_release(folder, progress) if layout == "release" else _load_port_export(folder, progress)
    metadata = {"source": "openai", "layout": layout, "imported_from": str(folder.resolve())}
    if OPENAI_SENTIMENT_UNIT < filler.model.config.rnn_size:
        metadata["sentiment_unit"] = OPENAI_SENTIMENT_UNIT
    return filler.finish(metadata)


# --------------------------------------------------------------------------- PyTorch


def _load_torch_file(path: Path):
    if not path.exists():
        raise UserError(f"{path} does not exist")
    if path.is_dir():
        raise UserError(
            f"{path} is a folder; import-pytorch takes a .pt checkpoint file "
            "(folders of .npy files from OpenAI or the port are imported with import-openai)"
        )
    try:
        # The first release saved its flags (an argparse.Namespace, plain data) beside the weights.
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        unsafe = re.search(r"GLOBAL (\S+) was not an allowed global", str(error))
        if unsafe:
            raise UserError(
                f"{path} pickles Python objects ({unsafe.group(1)}), not only tensors, and loading it could run "
                "arbitrary code, so it is refused; in an environment you trust re-save just its state dict "
                "with torch.save, or for the port of OpenAI's weights import its NumPy export with import-openai"
            ) from None
        raise UserError(f"{path} is truncated or not a PyTorch checkpoint ({_first_line(error)})") from None
    except MemoryError:
        raise
    except Exception as error:  # a damaged file surfaces as almost any exception type from torch.load
        raise UserError(f"{path} is truncated or not a PyTorch checkpoint ({_first_line(error)})") from None


def _flat_tensors(checkpoint, path: Path) -> dict[str, torch.Tensor]:
    """Dotted names -> tensors, from a state dict, one under ``state_dict``, or nested dicts.

    ``module.`` segments (from (Distributed)DataParallel wrappers) are dropped; entries that
    are not tensors (epoch, flags, histories) are ignored.
    """
    if not isinstance(checkpoint, dict):
        raise UserError(f"{path} holds a {type(checkpoint).__name__}, not a dict of tensors")
    if isinstance(checkpoint.get("state_dict"), dict):
        checkpoint = checkpoint["state_dict"]
    flat: dict[str, torch.Tensor] = {}

    def walk(prefix: str, value) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                walk(f"{prefix}{key}.", item)
        elif isinstance(value, torch.Tensor):
            flat[re.sub(r"(^|\.)module\.", r"\1", prefix[:-1])] = value

    walk("", checkpoint)
    return flat


class _SavedWeight(NamedTuple):
    """A weight as saved, [out, in]: plain, or as weight norm's direction and gain."""
    key: str
    weight: torch.Tensor  # the plain weight, or the direction v
    gain: torch.Tensor | None

    @property
    def stored_key(self) -> str:
        return self.key if self.gain is None else f"{self.key}_v"

    def folded(self) -> torch.Tensor:
        """The weight actually used: ``v * g / ||v||``, the norm per output row."""
        weight = self.weight.float()
        if self.gain is None:
            return weight
        return weight * (self.gain.float().reshape(-1, 1) / weight.norm(dim=1, keepdim=True))


def _regroup_gates(tensor: torch.Tensor, order: tuple[int, ...] | None) -> torch.Tensor:
    """``tensor`` [4H, ...] with its gate blocks reordered: block ``order[k]`` becomes block k."""
    if order is None:
        return tensor
    size = len(tensor) // len(order)
    return torch.cat([tensor[b * size : (b + 1) * size] for b in order])


class _Checkpoint:
    """The checkpoint's tensors by name; each is taken once, and any never taken is an error."""
    def __init__(self, tensors: dict[str, torch.Tensor], path: Path):
        self.tensors, self.path = tensors, path

    def has(self, key: str) -> bool:
        return key in self.tensors or f"{key}_v" in self.tensors

    def tensor(self, key: str, optional: bool = False) -> torch.Tensor | None:
        if key not in self.tensors:
            if optional:
                return None
            raise UserError(f"{self.path} has no tensor {key} ({self.found()})")
        return self.tensors.pop(key)

    def weight(self, key: str) -> _SavedWeight:
        if key in self.tensors:
            return _SavedWeight(key, self.tensors.pop(key), None)
        if f"{key}_g" in self.tensors and f"{key}_v" in self.tensors:
            return _SavedWeight(key, self.tensors.pop(f"{key}_v"), self.tensors.pop(f"{key}_g"))
        raise UserError(f"{self.path} has no tensor {key} (nor {key}_g and {key}_v) ({self.found()})")

    def layer_count(self, prefix: str) -> int:
        """How many layers ``<prefix><i>.`` there are, checking that they run 0 .. n-1."""
        pattern = re.compile(re.escape(prefix) + r"(\d+)\.")
        indices = sorted({int(m.group(1)) for key in self.tensors if (m := pattern.match(key))})
        if not indices or indices != list(range(len(indices))):
            raise UserError(f"{self.path}: layers {prefix}<i> are numbered {indices}, expected 0 .. n-1")
        return len(indices)

    def check_all_used(self) -> None:
        if self.tensors:
            left = sorted(self.tensors)
            more = f" and {len(left) - 5} more" if len(left) > 5 else ""
            raise UserError(f"{self.path} has tensors this importer does not understand: {', '.join(left[:5])}{more}")

    def found(self) -> str:
        keys = sorted(self.tensors)
        if not keys:
            return "found no tensors"
        return "found " + ", ".join(keys[:6]) + (", ..." if len(keys) > 6 else "")


class _Layer(NamedTuple):
    weights: dict[str, _SavedWeight]  # our name -> the saved weight, [out, in]
    biases: dict[str, list[torch.Tensor]]  # our parameter name in the layer -> saved biases to sum


@dataclasses.dataclass
class _Mapped:
    """A checkpoint read into our terms, before any of its shapes is trusted."""
    layout: str
    rnn_type: str
    embedding: torch.Tensor
    layers: list[_Layer]
    output: _SavedWeight | None
    output_bias: torch.Tensor | None
    # How to reorder an mLSTM's gate blocks into ours (i, f, o, u); None when already so.
    gate_order: tuple[int, ...] | None = None


def _present(*tensors: torch.Tensor | None) -> list[torch.Tensor]:
    return [t for t in tensors if t is not None]


def _saved_fuse_flag(checkpoint) -> bool | None:
    """The -fuse_lstm flag of the flags a checkpoint saved beside its weights, if it saved any."""
    if not isinstance(checkpoint, dict):
        return None
    for value in checkpoint.values():
        flags = vars(value) if isinstance(value, argparse.Namespace) else value if isinstance(value, dict) else {}
        if isinstance(flags.get("fuse_lstm"), bool):
            return flags["fuse_lstm"]
    return None


def _read_first_release(ckpt: _Checkpoint) -> _Mapped:
    count = ckpt.layer_count("rnn.layers.")
    rnn_type = "mlstm" if ckpt.has("rnn.layers.0.wmx.weight") else "lstm"
    layers = []
    for i in range(count):
        p = f"rnn.layers.{i}."
        if rnn_type == "mlstm":
            weights = {name: ckpt.weight(f"{p}{name}.weight") for name in ("wx", "wh", "wmx", "wmh")}
            biases = {"b": _present(ckpt.tensor(f"{p}wh.bias", optional=True))}
        else:  # torch.nn.LSTMCell
            weights = {name: ckpt.weight(p + name) for name in ("weight_ih", "weight_hh")}
            biases = {
                f"lstm.{name}_l0": _present(ckpt.tensor(p + name, optional=True)) for name in ("bias_ih", "bias_hh")
            }
        layers.append(_Layer(weights, biases))
    return _Mapped(
        "first-release", rnn_type, ckpt.tensor("embedder.weight"), layers,
        ckpt.weight("rnn.h2o.weight"), ckpt.tensor("rnn.h2o.bias", optional=True),
    )


def _read_later_release(ckpt: _Checkpoint) -> _Mapped:
    count = ckpt.layer_count("encoder.rnn.rnns.")
    if count > 1:
        raise UserError(
            f"{ckpt.path} has {count} layers; the later release stacks layers without the running sum "
            "(x = x + h) this model uses, so only its single-layer checkpoints can be imported"
        )
    p = "encoder.rnn.rnns.0."
    rnn_type = "mlstm" if ckpt.has(f"{p}w_mih") else "lstm"
    b_ih, b_hh = ckpt.tensor(f"{p}b_ih", optional=True), ckpt.tensor(f"{p}b_hh", optional=True)
    if rnn_type == "mlstm":
        weights = {name: ckpt.weight(p + theirs) for name, theirs in
                   (("wx", "w_ih"), ("wh", "w_hh"), ("wmx", "w_mih"), ("wmh", "w_mhh"))}
        layer = _Layer(weights, {"b": _present(b_ih, b_hh)})
    else:  # its LSTM gate order is PyTorch's, which our LSTM layers use too
        weights = {"weight_ih": ckpt.weight(f"{p}w_ih"), "weight_hh": ckpt.weight(f"{p}w_hh")}
        layer = _Layer(weights, {"lstm.bias_ih_l0": _present(b_ih), "lstm.bias_hh_l0": _present(b_hh)})
    return _Mapped(
        "later-release", rnn_type, ckpt.tensor("encoder.encoder.weight"), [layer],
        ckpt.weight("decoder.weight") if ckpt.has("decoder.weight") else None,
        ckpt.tensor("decoder.bias", optional=True),
        gate_order=LATER_TO_OUR_GATES if rnn_type == "mlstm" else None,
    )


def _read_layout(tensors: dict[str, torch.Tensor], path: Path) -> _Mapped:
    if "encoder.weight" in tensors and any(k.startswith("rnn.rnns.") for k in tensors):
        # The later release's featurizer saves the embedding and the rnn side by side.
        tensors = {(k if k.startswith("decoder.") else f"encoder.{k}"): v for k, v in tensors.items()}
    keys = set(tensors)
    ckpt = _Checkpoint(tensors, path)
    if "embedder.weight" in keys or any(k.startswith("rnn.layers.") for k in keys):
        mapped = _read_first_release(ckpt)
    elif "encoder.encoder.weight" in keys or any(k.startswith("encoder.rnn.rnns.") for k in keys):
        mapped = _read_later_release(ckpt)
    else:
        raise UserError(
            f"{path} is not a checkpoint of the 2017 PyTorch reproduction ({ckpt.found()}); expected "
            "embedder.weight and rnn.layers.<i>.* (first release) or encoder.encoder.weight and "
            "encoder.rnn.rnns.<i>.* (later release)"
        )
    ckpt.check_all_used()
    return mapped


def _check_tensor(path: Path, key: str, tensor: torch.Tensor, expected: tuple[int, ...], inferred: str) -> None:
    if not tensor.is_floating_point():
        raise UserError(f"{path}: {key} holds {tensor.dtype}, not floating-point numbers")
    if tuple(tensor.shape) != tuple(expected):
        raise UserError(f"{path}: {key} has shape {list(tensor.shape)}, expected {list(expected)} ({inferred})")


def _check_weight(path: Path, weight: _SavedWeight, expected: tuple[int, int], inferred: str) -> None:
    _check_tensor(path, weight.stored_key, weight.weight, expected, inferred)
    if weight.gain is not None and tuple(weight.gain.shape) not in ((expected[0], 1), (expected[0],)):
        raise UserError(
            f"{path}: {weight.key}_g has shape {list(weight.gain.shape)}, expected [{expected[0]}, 1] ({inferred})"
        )


def _check_mapped(mapped: _Mapped, path: Path) -> tuple[int, int]:
    """Every shape against E (from the embedding) and H (from the first recurrent matrix)."""
    embedding = mapped.embedding
    if embedding.ndim != 2 or embedding.shape[0] != VOCAB_SIZE:
        raise UserError(f"{path}: the embedding has shape {list(embedding.shape)}, expected [{VOCAB_SIZE}, E]")
    first = mapped.layers[0].weights["wh" if mapped.rnn_type == "mlstm" else "weight_hh"]
    if first.weight.ndim != 2 or first.weight.shape[1] == 0:
        raise UserError(f"{path}: {first.stored_key} has shape {list(first.weight.shape)}, expected [4H, H]")
    embed_size, hidden = embedding.shape[1], first.weight.shape[1]
    inferred = f"E={embed_size} from the embedding, H={hidden} from {first.stored_key}"
    _check_tensor(path, "the embedding", embedding, (VOCAB_SIZE, embed_size), inferred)
    for index, layer in enumerate(mapped.layers):
        inputs = embed_size if index == 0 else hidden
        for name, weight in layer.weights.items():
            rows = hidden if name in ("wmx", "wmh") else 4 * hidden
            columns = inputs if name in ("wx", "wmx", "weight_ih") else hidden
            _check_weight(path, weight, (rows, columns), inferred)
        for biases in layer.biases.values():
            for bias in biases:
                _check_tensor(path, f"a bias of layer {index}", bias, (4 * hidden,), inferred)
    if mapped.output is not None:
        _check_weight(path, mapped.output, (VOCAB_SIZE, hidden), inferred)
    if mapped.output_bias is not None:
        _check_tensor(path, "the output bias", mapped.output_bias, (VOCAB_SIZE,), inferred)
    return embed_size, hidden


def load_pytorch_checkpoint(source: str | Path, progress: bool = False, gate_layout: str = "auto") -> ByteLM:
    """A model from a checkpoint of the 2017 PyTorch reproduction (either release's layout).

    Weight norm is kept (direction and gain) when every recurrent weight has it, and folded
    into plain weights otherwise. A checkpoint without an output layer (the later release's
    featurizer) gets a zero one: its features are exact, its next-byte predictions uniform.
    ``gate_layout`` (one of :data:`GATE_LAYOUTS`) says how a first-release mLSTM's gates are
    ordered; the later release's are always PyTorch's i, f, g, o.
    """
    if gate_layout not in GATE_LAYOUTS:
        raise UserError(f"gate layout {gate_layout!r} is not one of {', '.join(GATE_LAYOUTS)}")
    path = Path(source)
    checkpoint = _load_torch_file(path)
    mapped = _read_layout(_flat_tensors(checkpoint, path), path)
    embed_size, hidden = _check_mapped(mapped, path)
    layout_notes = {}
    if mapped.layout == "first-release" and mapped.rnn_type == "mlstm":
        if gate_layout == "auto":
            fused = _saved_fuse_flag(checkpoint)
            gate_layout = "unfused" if not fused else "fused-cuda"
            layout_notes["gate_layout_from"] = "unrecorded" if fused is None else "the saved -fuse_lstm flag"
        if gate_layout != "unfused":
            mapped.gate_order = LATER_TO_OUR_GATES
        if gate_layout == "fused-cuda":  # the fused CUDA kernel never added the recurrent bias
            for layer in mapped.layers:
                layer.biases["b"].clear()
        layout_notes["gate_layout"] = gate_layout
    weight_norm = all(w.gain is not None for layer in mapped.layers for w in layer.weights.values())
    normed_output = weight_norm and mapped.output is not None and mapped.output.gain is not None
    config = ModelConfig(
        rnn_type=mapped.rnn_type, embed_size=embed_size, rnn_size=hidden, layers=len(mapped.layers),
        weight_norm=weight_norm, lstm_only=weight_norm and not normed_output,
    )
    filler = _ModelFiller(config, PYTORCH_TEXT_OPTIONS, progress, desc="import PyTorch checkpoint")
    filler.copy("embedding.weight", mapped.embedding)
    gates = lambda name, t: _regroup_gates(t, mapped.gate_order) if name in ("wx", "wh", "b") else t  # noqa: E731
    for index, layer in enumerate(mapped.layers):
        prefix = f"layers.{index}."
        for name, weight in layer.weights.items():
            value = gates(name, weight.weight if weight_norm else weight.folded())
            if mapped.rnn_type == "mlstm":  # our mLSTM weights are [in, out]
                filler.copy(prefix + name, value.t())
            else:
                filler.copy(f"{prefix}lstm.{name}_l0", value)
            if weight_norm:
                filler.copy(f"{prefix}{name}_g", gates(name, weight.gain.reshape(-1)))
        for name, biases in layer.biases.items():
            filler.copy(prefix + name, gates(name, sum((b.float() for b in biases), torch.zeros(4 * hidden))))
    notes = {}
    if mapped.output is None:
        notes["output_layer"] = "absent from the source; set to zero"
        filler.copy("output.weight", torch.zeros(VOCAB_SIZE, hidden))
    elif normed_output:
        filler.copy("output.weight", mapped.output.weight)
        filler.copy("output_g", mapped.output.gain.reshape(-1))
    else:
        filler.copy("output.weight", mapped.output.folded())
    filler.copy("output.bias", torch.zeros(VOCAB_SIZE) if mapped.output_bias is None else mapped.output_bias)
    metadata = {
        "source": "pytorch-2017", "layout": mapped.layout, "imported_from": str(path.resolve()), **layout_notes, **notes
    }
    return filler.finish(metadata)


# --------------------------------------------------------------------------- both


def import_weights(
    source: str | Path,
    dest: str | Path,
    overwrite: bool = False,
    progress: bool = False,
    *,
    gate_layout: str = "auto",
    text_options: TextOptions | None = None,
    metadata: dict | None = None,
) -> ByteLM:
    """Import published weights at ``source`` and save them as the model directory ``dest``.

    A folder is read as OpenAI's release (or the port's NumPy export), a file as a PyTorch
    checkpoint (``gate_layout`` as :func:`load_pytorch_checkpoint`). ``dest`` is replaced only
    with ``overwrite``. ``text_options`` replaces the text preparation the source's authors
    used; ``metadata`` is added to the model's.
    """
    source, dest = Path(source), Path(dest)
    if dest.exists() and not overwrite and (dest.is_file() or any(dest.iterdir())):
        raise UserError(f"{dest} already exists; choose another DEST or pass --overwrite to replace it")
    if source.is_dir():
        model = load_openai_weights(source, progress=progress)
    else:
        model = load_pytorch_checkpoint(source, progress=progress, gate_layout=gate_layout)
    if text_options is not None:
        model.text_options = text_options
    model.metadata = {**model.metadata, **(metadata or {})}
    if dest.is_file():
        dest.unlink()
    save_model(model, dest)
    return model
