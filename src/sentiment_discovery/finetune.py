"""Fine-tuning: the language model and a classifier head trained together on labelled texts.

Components used by the ``finetune`` recipe (and usable from Python):
- :class:`ClassifierHead`: a fixed standardisation, dropout and a linear layer over the
  pooled cell states of the top layer; it can start as a fitted L2 logistic regression
  (:func:`fit_probe_head`), which keeps the first updates from damaging the features;
- :class:`SequenceClassifier`: the language model and the head, with the auxiliary
  next-byte loss;
- the data order (:func:`epoch_batches`, and the run's position in it, :class:`EpochBatches`),
  per-layer learning rates and the unfreezing order (:func:`parameter_groups`); the schedule
  is the training engine's (``training.WarmupDecay``);
- :func:`head_probe`: the trained head as the :class:`transfer.LinearProbe` that ``classify``
  applies to the pooled features, so a fine-tuned classifier is used like any other.
"""

import dataclasses
from collections.abc import Sequence

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from torch import nn

from .features import left_padded_batch, pool_sequence, pooled_width
from .foundation.errors import UserError
from .model import ByteLM

# L2 strengths tried for the probe the head starts from (standardised features), chosen on validation.
PROBE_C_GRID = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0)
# Texts sorted together by length before they are cut into batches: little padding, still random.
SORT_POOL_BATCHES = 50


def keep_ends(data: bytes, max_length: int) -> bytes:
    """``data`` cut to ``max_length`` bytes keeping its first and last halves (a review's opening and verdict).

    Cuts fall on UTF-8 character boundaries, so the result may be a few bytes shorter.
    """
    if max_length <= 0 or len(data) <= max_length:
        return data
    head_length = max_length - max_length // 2
    head = data[:head_length].decode("utf-8", errors="ignore").encode("utf-8")
    tail = data[len(data) - max_length // 2 :].decode("utf-8", errors="ignore").encode("utf-8")
    return head + tail


# --------------------------------------------------------------------------- the network


class ClassifierHead(nn.Module):
    """``linear(dropout((pooled - mean) / scale))``: logits over the classes.

    ``mean``/``scale`` are fixed (buffers): the standardisation of the probe the head
    started from, so that its weights mean what the probe's did.
    """

    def __init__(self, width: int, classes: int, dropout: float = 0.0):
        super().__init__()
        self.register_buffer("mean", torch.zeros(width))
        self.register_buffer("scale", torch.ones(width))
        self.dropout = nn.Dropout(dropout)
        self.linear = nn.Linear(width, classes)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.linear(self.dropout((pooled.float() - self.mean) / self.scale))

    def load_probe(self, coef: np.ndarray, intercept: np.ndarray, mean: np.ndarray, scale: np.ndarray) -> None:
        """Start as a fitted logistic regression: ``coef`` [1 or classes, width] on standardised features.

        A binary probe's one row becomes logits (0, z), whose softmax is the probe's sigmoid.
        """
        coef, intercept = np.atleast_2d(coef), np.atleast_1d(intercept)
        if coef.shape[0] == 1:
            coef = np.concatenate([np.zeros_like(coef), coef])
            intercept = np.concatenate([np.zeros(1), intercept])
        with torch.no_grad():
            self.linear.weight.copy_(torch.as_tensor(coef, dtype=torch.float32))
            self.linear.bias.copy_(torch.as_tensor(intercept, dtype=torch.float32))
            self.mean.copy_(torch.as_tensor(mean, dtype=torch.float32))
            self.scale.copy_(torch.as_tensor(scale, dtype=torch.float32))


class SequenceClassifier(nn.Module):
    """The language model read by a head on its top layer's pooled cell states."""
    def __init__(self, language_model: ByteLM, classes: int, pooling: str, dropout: float = 0.0):
        super().__init__()
        self.language_model = language_model
        self.pooling = pooling
        self.head = ClassifierHead(pooled_width(language_model.config.rnn_size, pooling), classes, dropout)

    def forward(self, tokens: torch.Tensor, reset: torch.Tensor, is_text: torch.Tensor, lm_loss: bool = False):
        """(logits [B, classes], mean next-byte loss over the texts in nats, or None)."""
        encoded = self.language_model.encode(tokens, reset=reset, return_cell_sequences=True)
        pooled = pool_sequence(encoded.cell_sequences[-1], is_text, self.pooling)
        logits = self.head(pooled)
        if not lm_loss:
            return logits, None
        # Position t predicts byte t + 1; both are the text's when t is (texts are left-padded).
        predicts = is_text[:, :-1]
        byte_logits = self.language_model.decode(encoded.hidden[:, :-1][predicts])
        loss = nn.functional.cross_entropy(byte_logits.float(), tokens[:, 1:][predicts])
        return logits, loss


# --------------------------------------------------------------------------- the head's starting point


@dataclasses.dataclass
class ProbeFit:
    coef: np.ndarray  # [1 or classes, width], on standardised features
    intercept: np.ndarray
    mean: np.ndarray
    scale: np.ndarray
    C: float
    valid_accuracy: dict[float, float]


def fit_probe_head(
    train_features: np.ndarray, train_labels: np.ndarray, valid_features: np.ndarray, valid_labels: np.ndarray,
    c_grid: Sequence[float] = PROBE_C_GRID, seed: int = 0,
) -> ProbeFit:
    """L2 logistic regression on standardised features, C chosen on validation accuracy (ties: smaller C)."""
    mean = train_features.mean(axis=0, dtype=np.float64)
    scale = train_features.std(axis=0, dtype=np.float64)
    scale[scale == 0] = 1.0
    x_train = (train_features - mean) / scale
    x_valid = (valid_features - mean) / scale
    best, scores = None, {}
    for c in sorted(c_grid):
        model = LogisticRegression(C=c, max_iter=1000, random_state=seed).fit(x_train, train_labels)
        scores[float(c)] = float(np.mean(model.predict(x_valid) == valid_labels))
        if best is None or scores[float(c)] > scores[best[0]]:
            best = (float(c), model)
    c, model = best
    return ProbeFit(model.coef_.astype(np.float64), model.intercept_.astype(np.float64), mean, scale, c, scores)


# --------------------------------------------------------------------------- data order


def epoch_batches(lengths: Sequence[int], batch_size: int, seed: int, epoch: int) -> list[np.ndarray]:
    """The batches of one epoch: shuffled, then sorted by length within pools of 50 batches.

    A pure function of (seed, epoch), so a resumed run sees the same batches.
    """
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(len(lengths))
    lengths = np.asarray(lengths)
    batches = []
    pool = batch_size * SORT_POOL_BATCHES
    for start in range(0, len(order), pool):
        chunk = order[start : start + pool]
        chunk = chunk[np.argsort(-lengths[chunk], kind="stable")]
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


class EpochBatches:
    """A fine-tuning run's position in its data: the epoch, and the batch within it of
    :func:`epoch_batches`' order (the training state's ``batcher``, saved with a checkpoint)."""

    def __init__(self, lengths: Sequence[int], batch_size: int, seed: int):
        self.lengths, self.batch_size, self.seed = list(lengths), batch_size, seed
        self.epoch = 0
        self.step = 0  # batches of this epoch already taken
        self._order: tuple[int, list[np.ndarray]] | None = None

    def batches(self) -> list[np.ndarray]:
        if self._order is None or self._order[0] != self.epoch:
            self._order = (self.epoch, epoch_batches(self.lengths, self.batch_size, self.seed, self.epoch))
        return self._order[1]

    def next(self) -> np.ndarray:
        """The next batch's text indices; the epoch moves on only when a batch past its end is asked for."""
        while self.step >= len(self.batches()):
            self.epoch, self.step = self.epoch + 1, 0
        indices = self.batches()[self.step]
        self.step += 1
        return indices

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "step": self.step}

    def load_state_dict(self, values: dict) -> None:
        self.epoch, self.step = int(values["epoch"]), int(values["step"])


def text_batch(byte_strings: Sequence[bytes], device: torch.device):
    """(tokens, reset, is_text) of left-padded texts."""
    tokens, reset = left_padded_batch(byte_strings, device)
    lengths = torch.tensor([len(b) for b in byte_strings], device=device)
    is_text = torch.arange(tokens.shape[1], device=device) >= (tokens.shape[1] - lengths)[:, None]
    return tokens, reset, is_text


# --------------------------------------------------------------------------- learning rates


@dataclasses.dataclass
class ParameterGroup:
    name: str
    parameters: list[nn.Parameter]
    lr: float
    depth: int  # 0: the head; 1: the top layer; ...; unfrozen in this order


def parameter_groups(model: SequenceClassifier, head_lr: float, lm_lr: float, layer_decay: float) -> list[ParameterGroup]:
    """The head, then the recurrent layers from the top down, then the embedding.

    The top layer (with the next-byte output layer) gets ``lm_lr``, each one below
    ``layer_decay`` times the one above (ULMFiT's discriminative rates), the embedding
    as if it were one layer further down.
    """
    language_model = model.language_model
    groups = [ParameterGroup("head", list(model.head.parameters()), head_lr, 0)]
    layers = list(language_model.layers)
    for depth, index in enumerate(reversed(range(len(layers))), start=1):
        parameters = list(layers[index].parameters())
        if index == len(layers) - 1:
            parameters += list(language_model.output.parameters())
            if language_model.config.normalize_output:
                parameters.append(language_model.output_g)
        groups.append(ParameterGroup(f"layer {index}", parameters, lm_lr * layer_decay ** (depth - 1), depth))
    depth = len(layers) + 1
    groups.append(ParameterGroup("embedding", list(language_model.embedding.parameters()), lm_lr * layer_decay ** (depth - 1), depth))
    return groups


def unfrozen_depth(step: int, unfreeze_steps: int) -> int | None:
    """Deepest group trained at ``step``: one more group every ``unfreeze_steps`` (0: all, None returned)."""
    if unfreeze_steps <= 0:
        return None
    return step // unfreeze_steps


def set_trainable(groups: Sequence[ParameterGroup], depth: int | None) -> None:
    for group in groups:
        trainable = depth is None or group.depth <= depth
        for parameter in group.parameters:
            parameter.requires_grad_(trainable)
            if not trainable:
                parameter.grad = None


def check_classes(labels: np.ndarray, what: str) -> int:
    """The number of classes (labels 0 .. K-1, each present in training)."""
    labels = np.asarray(labels)
    if labels.size == 0:
        raise UserError(f"{what} is empty")
    if labels.min() < 0 or not np.all(labels == np.round(labels)):
        raise UserError(f"{what} has labels that are not 0, 1, 2, ...")
    classes = int(labels.max()) + 1
    missing = sorted(set(range(classes)) - set(np.unique(labels).astype(int).tolist()))
    if classes < 2:
        raise UserError(f"{what} has only label {int(labels[0])}; a classifier needs examples of at least two labels")
    if missing:
        raise UserError(f"{what} has no example of label(s) {', '.join(map(str, missing))} of 0..{classes - 1}")
    return classes
