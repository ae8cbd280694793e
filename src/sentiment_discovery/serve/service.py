"""What ``sentiment-discovery serve`` computes, without the web framework.

One :class:`InferenceService` holds one language model and (optionally) one classifier,
loaded once. Every computation runs on one worker thread, in submission order, so the
model is never used by two requests at a time; a request waits for its result as a
future. Classify and featurize requests that are waiting together, with the same feature
options, are merged into one featurize call (up to ``Limits.batch_texts`` texts): under
load, a request's texts then share matrix products with others' instead of queueing
behind them one by one, and when only one request is waiting nothing is held back.

The computations themselves are the package's: :meth:`SentimentClassifier.features` and
its probes for classification, :func:`features.featurize`, :func:`visualize.unit_values`
and :class:`visualize.SteeredGeneration`.

Why this module is long: the worker thread, the request merging and the limits each
request is checked against are one mechanism (a request's fate depends on all three);
the module is the whole of the service apart from HTTP (``serve/app.py``).
"""

import codecs
import collections
import concurrent.futures
import dataclasses
import threading
from collections.abc import Callable, Hashable, Iterator, Sequence
from pathlib import Path

import numpy as np

from .. import defaults, transfer, visualize
from ..checkpoint import load_model, resolve_model_directory
from ..features import check_pooling, encode_texts
from ..foundation.errors import UserError
from ..precision import PRECISIONS, resolve_precision


class LimitExceeded(UserError):
    """A request larger than the service accepts (HTTP 413)."""


@dataclasses.dataclass(frozen=True)
class Limits:
    """The largest request the service accepts, and how many texts one featurize call merges."""

    text_chars: int = 10_000  # characters of one text (a long review is ~5,000)
    texts: int = 256  # texts in one classify or featurize request
    new_bytes: int = 2_000  # bytes one generate request may write
    batch_texts: int = 256  # texts merged from waiting requests into one featurize call

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):  # each is the flag --max-<name> of serve
            if getattr(self, field.name) < 1:
                flag = f"--max-{field.name.replace('_', '-')}"
                raise UserError(f"{flag} must be at least 1, not {getattr(self, field.name)}")

    @property
    def body_bytes(self) -> int:
        """The largest request body: the most texts of the longest text, each character up to
        4 UTF-8 bytes (6 when JSON escapes it), plus room for the rest of the request."""
        return self.texts * self.text_chars * 6 + 65_536


@dataclasses.dataclass(frozen=True)
class ShownUnit:
    """The unit a heatmap shows by default: its index, layer and sign (-1: high means negative)."""

    unit: int
    layer: int
    sign: int = 1

    @property
    def negate(self) -> bool:
        return self.sign < 0


@dataclasses.dataclass
class _Job:
    run: Callable[[list], list] | Callable[[], object]
    future: concurrent.futures.Future
    batch_key: Hashable | None = None  # jobs with equal keys may run as one batch
    items: list = dataclasses.field(default_factory=list)  # a batchable job's inputs


@dataclasses.dataclass
class BatchStats:
    """Counts since start: computations run, and how many requests and texts they served."""

    batches: int = 0
    requests: int = 0
    texts: int = 0
    largest_batch_requests: int = 0


class InferenceService:
    """The model, the classifier and the unit shown, behind one worker thread."""

    def __init__(
        self,
        model,
        classifier=None,
        *,
        unit: ShownUnit,
        model_name: str = "model",
        model_path: str | None = None,
        limits: Limits = Limits(),
        batch_size: int = 64,
        featurize_precision: str = "auto",
    ):
        if featurize_precision not in PRECISIONS:
            raise UserError(f"precision must be one of {', '.join(PRECISIONS)}, not {featurize_precision!r}")
        self.model, self.classifier, self.unit = model, classifier, unit
        self.model_name, self.model_path = model_name, model_path
        # Resolved once: every product of the server (features, heatmaps, generation) runs in it.
        self.featurize_precision = resolve_precision(featurize_precision, model.device)
        self.limits, self.batch_size = limits, batch_size
        self.shown_unit(unit.unit, unit.layer, unit.negate)  # a unit the model has
        self.stats = BatchStats()
        self._jobs: collections.deque[_Job] = collections.deque()
        self._condition = threading.Condition()
        self._closed = False
        self._worker = threading.Thread(target=self._work, name="sentiment-discovery-inference", daemon=True)
        self._worker.start()

    # ---- loading

    @classmethod
    def load(
        cls,
        model: str | None = None,
        classifier: str | None = None,
        *,
        unit: int | None = None,
        layer: int | None = None,
        device: str = "cpu",
        **options,
    ) -> "InferenceService":
        """The shipped model and classifier, or the ones named; the unit shown is ``unit`` (of
        ``layer``), else the classifier's top unit, else the shipped unit, else the sentiment unit
        in the model's metadata (:func:`defaults.resolve_sentiment_unit`).

        A model without a classifier serves everything but ``classify``.
        """
        fitted = None
        if classifier is not None or model is None:
            fitted = transfer.SentimentClassifier.load(classifier, device=device)
            fitted.attach_model(model if model is not None else fitted.model.path)
            language_model = fitted.language_model
            model_path = model if model is not None else fitted.model.path
        else:
            model_path = resolve_model_directory(model)
            language_model = load_model(model_path, device=device)
        found = defaults.resolve_sentiment_unit(
            language_model,
            fitted if classifier is not None else None,  # the shipped classifier's unit is the shipped unit file's
            unit,
            layer,
            shipped=model is None and classifier is None,
            model_name=f"model {model}",
            unit_flag="--unit",
        )
        if found is None:
            raise UserError(
                f"model {model} records no sentiment unit and no classifier was given; "
                "pass --unit N (or --classifier DIR, the results directory of `transfer`)"
            )
        language_model.eval()
        if model is None and classifier is None:
            name = "the model shipped with the package"
        else:
            name = Path(model_path).name
        shown = ShownUnit(found.unit, found.layer, found.sign)
        return cls(language_model, fitted, unit=shown, model_name=name, model_path=str(model_path), **options)

    def info(self) -> dict:
        model, classifier = self.model, self.classifier
        described = None
        if classifier is not None:
            described = {
                "path": str(classifier.source) if classifier.source else None,
                "layer": classifier.model.layer,
                "pooling": classifier.model.pooling,
                "precision": classifier.model.precision,
                "preprocess": classifier.model.preprocess,
                "top_units": [int(u) for u in classifier.top_units],
                "top_unit_signs": [int(s) for s in classifier.top_unit_signs],
                "probability_trace": self.has_probability_trace,
                # None for a binary (negative/positive) classifier; else the class labels (-multiclass).
                "classes": None if classifier.classes is None else [int(c) for c in classifier.classes],
            }
        return {
            "model": {
                "name": self.model_name,
                "path": self.model_path,
                "rnn_type": model.config.rnn_type,
                "rnn_size": model.config.rnn_size,
                "layers": model.config.layers,
                "weights_sha256": classifier.model.weights_sha256 if classifier is not None else None,
            },
            "classifier": described,
            # One precision for every product, chosen for this machine at start; /featurize may ask for another.
            "precision": {
                "classify": resolve_precision(classifier.precision, model.device) if classifier is not None else None,
                "featurize": self.featurize_precision,
                "unit_values": self.featurize_precision,
                "generate": self.featurize_precision,
            },
            "unit": {"unit": self.unit.unit, "layer": self.layer_index(self.unit.layer), "sign": self.unit.sign},
            "limits": {
                "text_chars": self.limits.text_chars,
                "texts": self.limits.texts,
                "new_bytes": self.limits.new_bytes,
                "body_bytes": self.limits.body_bytes,
            },
        }

    @property
    def has_probability_trace(self) -> bool:
        return callable(getattr(self.classifier, "probability_trace", None))

    # ---- the worker

    def _submit(self, job: _Job) -> concurrent.futures.Future:
        with self._condition:
            if self._closed:
                raise RuntimeError("the inference service is closed")
            self._jobs.append(job)
            self._condition.notify()
        return job.future

    def call(self, function: Callable[[], object]) -> concurrent.futures.Future:
        """Run ``function`` on the worker thread, after what is queued."""
        return self._submit(_Job(function, concurrent.futures.Future()))

    def call_batched(self, key: Hashable, items: list, function: Callable[[list], list]) -> concurrent.futures.Future:
        """Run ``function(items)`` on the worker, possibly as part of one call on the items of
        several waiting requests with the same ``key``; the future gets this request's results."""
        return self._submit(_Job(function, concurrent.futures.Future(), key, list(items)))

    def _next_batch(self) -> list[_Job]:
        with self._condition:
            while not self._jobs and not self._closed:
                self._condition.wait()
            if not self._jobs:
                return []
            first = self._jobs.popleft()
            batch = [first]
            if first.batch_key is not None:
                count = len(first.items)
                for job in list(self._jobs):
                    if job.batch_key == first.batch_key and count + len(job.items) <= self.limits.batch_texts:
                        self._jobs.remove(job)
                        batch.append(job)
                        count += len(job.items)
            return batch

    def _work(self) -> None:
        # Inference mode for the thread's lifetime (torch's no-grad switch is per thread), and
        # each layer's weight-normed weights computed once: the weights never change here.
        with visualize.inference(self.model, self.featurize_precision), visualize.weights_computed_once(self.model):
            while batch := self._next_batch():
                if batch[0].batch_key is None:
                    self._run_single(batch[0])
                else:
                    self._run_batch(batch)

    @staticmethod
    def _run_single(job: _Job) -> None:
        if not job.future.set_running_or_notify_cancel():
            return
        try:
            job.future.set_result(job.run())
        except BaseException as error:  # handed to the waiting request; the worker goes on
            job.future.set_exception(error)

    def _run_batch(self, batch: list[_Job]) -> None:
        batch = [job for job in batch if job.future.set_running_or_notify_cancel()]
        if not batch:
            return
        items = [item for job in batch for item in job.items]
        try:
            results = batch[0].run(items)
        except BaseException as error:
            if len(batch) == 1:
                batch[0].future.set_exception(error)
                return
            # One request's failure must not fail the others: run each alone.
            for job in batch:
                try:
                    job.future.set_result(job.run(job.items))
                except BaseException as single_error:
                    job.future.set_exception(single_error)
            return
        self.stats.batches += 1
        self.stats.requests += len(batch)
        self.stats.texts += len(items)
        self.stats.largest_batch_requests = max(self.stats.largest_batch_requests, len(batch))
        start = 0
        for job in batch:
            job.future.set_result(results[start : start + len(job.items)])
            start += len(job.items)

    def queued(self) -> int:
        with self._condition:
            return len(self._jobs)

    def close(self, timeout: float | None = 10.0) -> None:
        """Finish what is queued, then stop the worker."""
        with self._condition:
            self._closed = True
            self._condition.notify_all()
        self._worker.join(timeout)

    # ---- checking requests (on the caller's thread, before anything is queued)

    def check_texts(self, texts: Sequence[str]) -> None:
        if not texts:
            raise UserError("texts is empty; send at least one text")
        if len(texts) > self.limits.texts:
            raise LimitExceeded(f"{len(texts)} texts in one request; this server takes at most {self.limits.texts}")
        for index, text in enumerate(texts):
            self.check_text(text, f"text {index}")

    def check_text(self, text: str, what: str = "the text") -> None:
        if len(text) > self.limits.text_chars:
            raise LimitExceeded(
                f"{what} has {len(text)} characters; this server takes at most {self.limits.text_chars}"
            )

    def _require_classifier(self):
        if self.classifier is None:
            raise UserError("no classifier is loaded; start the server with --classifier DIR to classify")
        return self.classifier

    # ---- the computations

    def classify(self, texts: Sequence[str]) -> concurrent.futures.Future:
        """Future of ``(P(positive), label index)`` per text, as ``sentiment-discovery classify`` gives them.

        A classifier with classes other than 0/1 (``-multiclass``): ``(P(predicted class), its index in
        ``classifier.class_labels``, [P(each class)])`` per text.
        """
        classifier = self._require_classifier()
        self.check_texts(texts)
        for index, text in enumerate(texts):  # as `classify -text ""` is refused
            if not text.strip():
                raise UserError(f"text {index} is empty; there is nothing to label")
        prepared = encode_texts(self.model, texts, preprocess=classifier.model.preprocess)

        def run(batch: list[bytes]) -> list[tuple]:
            features = classifier.features(batch, batch_size=self.batch_size)
            # The prepared bytes are what an n-gram part reads too (as classify's texts, once prepared).
            scores = classifier.scores(features, texts=batch)
            rows = classifier.probabilities(scores)
            if classifier.classes is not None:
                return [(float(row.max()), int(np.argmax(row)), [float(p) for p in row]) for row in rows]
            labels = classifier.all_neurons.predictions(scores)
            return [(float(row[1]), int(label)) for row, label in zip(rows, labels)]

        return self.call_batched(("classify",), prepared, run)

    def probability_traces(self, texts: Sequence[str]) -> concurrent.futures.Future:
        """Future of the classifier's P(positive) of each text so far, byte by byte and per character.

        K > 2 classes: the probability of the class predicted for the whole text, so far.
        """
        self._require_classifier()
        self.check_texts(texts)
        if not self.has_probability_trace:
            raise UserError("this classifier has no per-character probability trace; ask without trace")
        return self.call(lambda: [self._probability_trace(text) for text in texts])

    def _probability_trace(self, text: str) -> dict:
        if getattr(self.classifier, "classes", None) is not None:  # -multiclass: the text's predicted class
            probabilities = np.asarray(self.classifier.predicted_class_trace(text)[0], dtype=np.float64)
        else:
            probabilities = np.asarray(self.classifier.probability_trace(text), dtype=np.float64)
        data = encode_texts(self.model, [text], preprocess=self.classifier.model.preprocess)[0]
        if probabilities.shape != (len(data),):
            raise RuntimeError(f"probability_trace gave {probabilities.shape} values for {len(data)} bytes")
        # Shown like a unit: 2p - 1 on the heatmap's colours, +1 for certainly positive.
        cells = visualize.character_cells(visualize.Trace(data, 2 * probabilities - 1, len(data)))
        return {
            "probabilities": [float(p) for p in probabilities],
            "characters": [_cell_dict(cell, probability=float(p)) for cell, p in
                           zip(cells, probabilities[[last for _, last in visualize.utf8_characters(data)]])],
        }

    def featurize(
        self,
        texts: Sequence[str],
        *,
        layer: int = -1,
        pooling: str = "final",
        precision: str | None = None,
        preprocess: bool = True,
    ) -> concurrent.futures.Future:
        """Future of a float32 [texts, rnn_size] array, as ``sentiment-discovery featurize`` writes."""
        precision = precision or self.featurize_precision
        self.check_texts(texts)
        check_pooling(pooling)
        if precision not in PRECISIONS:
            raise UserError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
        layer = self.layer_index(layer)
        prepared = encode_texts(self.model, texts, preprocess=preprocess)

        def run(batch: list[bytes]) -> list[np.ndarray]:
            features = self.model.featurize(
                batch, batch_size=self.batch_size, layer=layer, pooling=pooling, precision=precision
            )
            return list(features)

        rows = self.call_batched(("featurize", layer, pooling, precision), prepared, run)
        return _then(rows, lambda rows: np.stack(rows))

    def layer_index(self, layer: int) -> int:
        layers = self.model.config.layers
        if not -layers <= layer < layers:
            raise UserError(f"layer {layer} does not exist: the model has {layers} layer(s) (0..{layers - 1}, or -1 for the top)")
        return layer % layers

    def shown_unit(self, unit: int | None, layer: int | None, negate: bool | None) -> tuple[int, int, bool]:
        """The request's unit, layer and negation, defaulting to the service's unit."""
        if unit is None:
            unit = self.unit.unit
            layer = self.unit.layer if layer is None else layer
            negate = self.unit.negate if negate is None else negate
        size = self.model.config.rnn_size
        if not 0 <= unit < size:
            raise UserError(f"unit {unit} does not exist: the model has {size} units (0..{size - 1})")
        return unit, self.layer_index(-1 if layer is None else layer), bool(negate)

    def unit_values(
        self, text: str, unit: int | None = None, layer: int | None = None, negate: bool | None = None
    ) -> concurrent.futures.Future:
        """Future of the heatmap of ``text``: the unit after every byte and one cell per character."""
        self.check_text(text)
        unit, layer, negate = self.shown_unit(unit, layer, negate)
        visualize.prompt_bytes(self.model, text)  # an empty text is refused here, not on the worker

        def run() -> dict:
            trace = visualize.unit_values(self.model, text, unit, layer=layer, precision=self.featurize_precision)
            return {
                "unit": unit,
                "layer": layer,
                "negate": negate,
                "bytes": len(trace.data),
                "values": [float(v) for v in trace.values],
                "characters": [_cell_dict(cell) for cell in visualize.character_cells(trace, negate)],
            }

        return self.call(run)

    def generate(
        self,
        prompt: str,
        *,
        new_bytes: int,
        hold: float | None = None,
        unit: int | None = None,
        layer: int | None = None,
        negate: bool | None = None,
        temperature: float = 0.4,
        seed: int | None = 0,
        step_bytes: int = 8,
    ) -> Iterator[concurrent.futures.Future]:
        """Futures of the generation's events, one after another: the prompt, then the written
        text ``step_bytes`` at a time (each a separate job, so requests queued meanwhile are served
        between them), then the end. ``hold`` +1 steers towards positive: it is negated for a unit
        whose sign is negative, as ``visualize -overwrite`` does."""
        self.check_text(prompt, "the prompt")
        if not 1 <= new_bytes <= self.limits.new_bytes:
            if new_bytes > self.limits.new_bytes:
                raise LimitExceeded(f"new_bytes {new_bytes}; this server writes at most {self.limits.new_bytes}")
            raise UserError(f"new_bytes must be at least 1, not {new_bytes}")
        if temperature < 0:
            raise UserError(f"temperature must be 0 (greedy) or more, not {temperature}")
        if hold is not None:
            visualize.check_hold(hold, "hold")  # here, before the 200: past float32 the worker would fail mid-stream
        unit, layer, negate = self.shown_unit(unit, layer, negate)
        data = visualize.prompt_bytes(self.model, prompt, generate=True)
        overwrite = None if hold is None else (-hold if negate else hold)
        return self._generation_events(data, new_bytes, unit, layer, negate, overwrite, temperature, seed, step_bytes)

    def _generation_events(self, data, new_bytes, unit, layer, negate, overwrite, temperature, seed, step_bytes):
        state = {}

        def start() -> dict:
            generation = visualize.SteeredGeneration(
                self.model, data, unit, layer=layer, temperature=temperature, overwrite=overwrite, seed=seed
            )
            state.update(generation=generation, data=bytearray(), values=[], sent=0)
            cells = visualize.character_cells(generation.prompt_trace, negate)
            return {"event": "prompt", "unit": unit, "layer": layer, "negate": negate, "hold": overwrite,
                    "characters": [_cell_dict(cell) for cell in cells]}

        def steps(count: int, final: bool) -> dict:
            for _ in range(count):
                byte, value = state["generation"].step()
                state["data"].append(byte)
                state["values"].append(value)
            # Characters are sent whole: trailing bytes that may still become a character wait.
            pending = bytes(state["data"][state["sent"]:])
            complete = len(pending) if final else _complete_prefix_length(pending)
            trace = visualize.Trace(pending[:complete], state["values"][state["sent"]:][:complete], 0)
            state["sent"] += complete
            return {"event": "text", "characters": [_cell_dict(cell) for cell in visualize.character_cells(trace, negate)]}

        yield self.call(start)
        written = 0
        while written < new_bytes:
            count = min(step_bytes, new_bytes - written)
            written += count
            yield self.call(lambda count=count, final=written == new_bytes: steps(count, final))
        done = concurrent.futures.Future()
        text = bytes(state.get("data", b""))
        done.set_result({"event": "done", "bytes": len(text), "text": text.decode("utf-8", errors="replace")})
        yield done


def _complete_prefix_length(data: bytes) -> int:
    """How many leading bytes of ``data`` are whole characters (invalid bytes count as one each):
    all but a trailing UTF-8 sequence that more bytes could still complete."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    decoder.decode(data, final=False)
    return len(data) - len(decoder.getstate()[0])


def _cell_dict(cell: "visualize.Cell", **extra) -> dict:
    return {**dataclasses.asdict(cell), **extra}


def _then(future: concurrent.futures.Future, transform: Callable) -> concurrent.futures.Future:
    """A future of ``transform(future's result)``."""
    result = concurrent.futures.Future()

    def done(source: concurrent.futures.Future) -> None:
        if source.exception() is not None:
            result.set_exception(source.exception())
            return
        try:
            result.set_result(transform(source.result()))
        except BaseException as error:
            result.set_exception(error)

    future.add_done_callback(done)
    return result
