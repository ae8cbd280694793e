"""The outputs of ``sentiment-discovery finetune``, written once training has ended.

:func:`finish` saves the best weights (loaded into the model by the caller) as the model
directory ``model/`` with ``classifier.json`` beside it (the head as the logistic regression
``classify`` applies, see :func:`head_probe`, plus a probe on the top unit), prints the
accuracy lines in the 2017 format, and writes ``results.json``.
"""


import dataclasses
import json
import math
import time
from pathlib import Path

import torch

from .. import finetune, training, transfer
from ..checkpoint import save_model
from ..foundation import log, storage

# The fine-tuned model directory in the run directory.
MODEL_SUBDIR = "model"


def finish(config, model, data, splits, state: training.TrainingState, precision, device, run_dir: Path, start_model: Path,
           started: float, total_steps: int, class_labels: list[int] | None = None) -> None:
    """Write the best weights as a model directory with its classifier, the accuracy lines and results.json."""
    probe = head_probe(model.head)
    rnn_size = model.language_model.config.rnn_size
    # The unit the head weighs most (a concat feature's index taken back to its unit), for visualize.
    top = int(transfer.rank_units(probe, 1)[0])
    model_dir = save_model(model.language_model, run_dir / MODEL_SUBDIR, metadata={
        "finetuned": {"from": str(start_model), "classes": probe.n_classes, "pooling": config.pooling, "best_step": state.progress.best_step},
        "sentiment_unit": top % rnn_size, "sentiment_unit_sign": transfer.unit_sign(probe, top),
        "sentiment_unit_source": "the fine-tuned head's largest weight",
    })
    identity = transfer.ModelIdentity.of(model.language_model, model_dir, precision=precision, pooling=config.pooling)
    identity = dataclasses.replace(identity, path=MODEL_SUBDIR)  # relative to classifier.json: the folder moves whole
    features, eval_seconds = {}, {}
    for name, split in splits.items():
        began = time.perf_counter()
        # Validation and test texts whole, as classify reads them; train as it was fed (cut to -max_text_length).
        texts = data[name].data if name == "train" else split.texts
        features[name] = model.language_model.featurize(texts, batch_size=config.eval_batch_size, progress=True,
                                                        precision=precision, pooling=config.pooling)
        eval_seconds[name] = round(time.perf_counter() - began, 1)
    labels = {name: split.labels for name, split in splits.items()}
    top_units = transfer.rank_units(probe, transfer.TOP_UNITS_SHOWN).tolist()
    sweep = transfer.sweep_regularization(features["train"], labels["train"], features["valid"], labels["valid"],
                                          units=top_units[:1], seed=config.seed)
    classifier = transfer.SentimentClassifier(
        all_neurons=probe, n_neurons=sweep.probe, top_units=[int(u) for u in top_units],
        top_unit_signs=[transfer.unit_sign(probe, u) for u in top_units], model=identity, classes=class_labels,
    )
    order = ("train", "valid", "test")

    def accuracies(p) -> list[float | None]:
        return [None if name not in features or labels[name] is None else p.accuracy(features[name], labels[name])
                for name in order]

    full, top = accuracies(probe), accuracies(sweep.probe)
    lines = transfer.seed_output(transfer.ClassifierScores.of(probe, full), transfer.ClassifierScores.of(sweep.probe, top),
                                 classifier.top_units)
    print("\n".join(lines), flush=True)
    classifier.save(run_dir)
    probe_report = json.loads((run_dir / "probe.json").read_text()) if (run_dir / "probe.json").is_file() else None
    by_domain = per_class = None
    if splits["valid"].domains is not None:
        by_domain = transfer.domain_accuracies(probe.predict(features["valid"]) == labels["valid"], splits["valid"].domains)
    if class_labels is not None:
        evaluated = "test" if labels.get("test") is not None else "valid"
        per_class = transfer.class_report(
            class_labels, probe.predict(features[evaluated]), labels[evaluated], labels["train"], evaluated,
        )
    results = transfer.FinetuneResults(
        start_model=str(start_model),
        model=identity,
        files={"train": config.train, "valid": config.valid, "test": config.test},
        texts={name: len(split.texts) for name, split in splits.items()},
        finetuned_accuracy=dict(zip(order, full)),
        top_unit_accuracy=dict(zip(order, top)),
        top_units=classifier.top_units,
        best_step=state.progress.best_step,
        best_valid_accuracy_during_training=state.progress.best_accuracy,
        steps=state.iteration,
        total_steps=total_steps,
        epochs_run=round(state.iteration / math.ceil(len(data["train"].data) / config.batch_size), 3),
        head_init=probe_report,
        precision=precision,
        seed_output=lines,
        timing={
            "train_seconds": round(state.elapsed_s, 1),
            "bytes_trained": state.progress.bytes_seen,
            "bytes_per_s": round(state.progress.bytes_seen / max(state.elapsed_s, 1e-9), 1),
            "final_evaluation_seconds": eval_seconds,
            "this_invocation_seconds": round(time.perf_counter() - started, 1),
            "threads": torch.get_num_threads(),
        },
        history=state.history.rows["history"],
        command_config=dataclasses.asdict(config),
        valid_accuracy_by_domain=by_domain,
        valid_mean_domain_accuracy=None if by_domain is None else sum(by_domain.values()) / len(by_domain),
        classes=class_labels,
        per_class=per_class,
    ).to_dict()
    storage.write_json(run_dir / "results.json", results)
    log.info(f"fine-tuned model and classifier saved to {run_dir}/ (classify -classifier {run_dir})")


def head_probe(head: finetune.ClassifierHead) -> "transfer.LinearProbe":
    """The binary head as the logistic regression ``classify`` applies: the logit difference of class 1 over 0.

    A head of K > 2 classes: its K logits as they are, their softmax the probabilities.
    """

    weight = head.linear.weight.detach().double().cpu().numpy()
    bias = head.linear.bias.detach().double().cpu().numpy()
    standardisation = {"mean": head.mean.detach().double().cpu().numpy(), "scale": head.scale.detach().double().cpu().numpy()}
    if weight.shape[0] > 2:
        return transfer.LinearProbe(coef=weight, intercept=bias, C=0.0, softmax=True, **standardisation)
    return transfer.LinearProbe(coef=weight[1] - weight[0], intercept=float(bias[1] - bias[0]), C=0.0, **standardisation)
