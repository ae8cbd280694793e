"""``sentiment-discovery calibrate``: a classifier's probabilities made to mean what they say, and its n-gram part.

Reads a binary classifier (what ``transfer`` or ``finetune`` wrote) and a labelled held-out
selection file (``-valid``, never a test set). With ``-ngrams`` it fits the n-gram part
(TF-IDF word 1-2 and character 2-5 grams, a logistic regression; ``transfer/ngrams.py``) on
``-train``, chooses its C and the weight of the blend ``(1 - w) * language model + w * n-grams``
on the selection file, and keeps the blend only where it beats both of its parts alone there
(the language model must earn its place, and so must the n-grams). Then it fits a temperature
on the selection file (``transfer/calibration.py``). Scores are the mean of the domains'
accuracies with ``-domain_key`` (each domain counts the same), else the plain accuracy.

Everything goes to ``-out DIR`` (written whole, or not at all): ``model/`` (a copy of the
classifier's model), ``classifier.json`` (with ``temperature`` and, where kept, ``ngrams``),
``ngrams.safetensors``, ``calibration.json`` (every choice and its scores, the expected
calibration error before and after), ``reliability.png``, and the source run's ``results.json``
and ``learning_curve.png`` where it has them (they describe the classifier before calibration). ``classify``, ``serve``,
``visualize``, ``export-default`` and ``SentimentClassifier.load`` use the result with no new flags.
"""

import dataclasses
import shutil
import time
from pathlib import Path

import numpy as np

from .. import transfer
from ..configs.calibrate import CalibrateConfig
from ..data.readers import read_labeled
from ..foundation import log, storage
from ..foundation.errors import UserError
from ..foundation.options import check_options
from ..runtime import configure_threads
from ..transfer.calibration import fit_temperature, plot_reliability, reliability
from ..transfer.ngrams import fit_ngram_probe

# What the source classifier's run recorded (transfer's or finetune's), copied beside the calibrated one.
SOURCE_RECORDS = ("results.json", "learning_curve.png")
# Blend weights of the n-gram part tried: 0 is the language model alone, 1 the n-grams alone.
BLEND_WEIGHTS = tuple(round(0.05 * step, 2) for step in range(21))


def check_flags(config: CalibrateConfig) -> None:
    check_options(config)
    if config.ngrams and not config.train:
        raise UserError("-ngrams fits the n-gram part on -train: pass -train FILE")
    if config.train and not config.ngrams:
        raise UserError("-train is read only with -ngrams (the n-gram part's training texts); pass -ngrams or drop -train")
    out = Path(config.out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"-out {out} exists and is not an empty directory; name a new one")
    for source in (config.classifier, config.valid, config.train):
        if source is not None and storage.same_path(out, source):
            raise UserError(f"-out {out} is also an input ({source}); name a new directory")


def run(config: CalibrateConfig) -> int:
    check_flags(config)
    with storage.output_lock(config.out, what="-out"):
        _run(config)
    return 0


def _run(config: CalibrateConfig) -> None:
    # Lazy imports, not at the top: the CLI imports this module for its flags, and
    # `--help` should not wait for torch, numpy and scikit-learn (docs/performance.md).


    began = time.perf_counter()
    configure_threads()
    classifier = transfer.SentimentClassifier.load(config.classifier, precision=config.precision)
    if classifier.classes is not None:
        raise UserError(f"{classifier.source} has classes {classifier.class_labels}; calibrate takes a binary classifier")
    if classifier.ngrams is not None or classifier.temperature != 1.0:
        raise UserError(f"{classifier.source} is calibrated already; calibrate the classifier it was made from")
    valid = read_labeled(config.valid, config.text_key, config.label_key, domain_key=config.domain_key)
    transfer.check_labels(valid.labels, f"the selection file {config.valid}")
    domains = valid.domains or ["all"] * len(valid.texts)

    def score(predicted) -> tuple[float, dict]:
        by_domain = transfer.domain_accuracies(predicted == valid.labels, domains)
        return sum(by_domain.values()) / len(by_domain), by_domain

    log.info(f"featurizing the {len(valid.texts)} selection texts of {config.valid}")
    features = classifier.features(valid.texts, batch_size=config.batch_size, progress=True)
    lm_scores = classifier.all_neurons.decision_function(features)
    report = {"classifier": str(classifier.source), "valid": config.valid, "domain_key": config.domain_key,
              "selection_texts": len(valid.texts)}
    lm_score, lm_domains = score((lm_scores > 0).astype(np.int64))
    report["language_model"] = {"score": lm_score, "by_domain": lm_domains}
    final_scores = lm_scores
    if config.ngrams:
        train = read_labeled(config.train, config.text_key, config.label_key)
        transfer.check_labels(train.labels, f"the n-gram training file {config.train}")
        valid_texts = classifier.ngram_texts(valid.texts)
        log.info(f"fitting the n-gram part on the {len(train.texts)} texts of {config.train}")
        probe, c_scores = fit_ngram_probe(
            classifier.ngram_texts(train.texts), train.labels,
            lambda candidate: score((candidate.decision_function(valid_texts) > 0).astype(np.int64))[0],
            seed=config.seed,
        )
        ngram_scores = probe.decision_function(valid_texts)
        blends = {w: score((((1 - w) * lm_scores + w * ngram_scores) > 0).astype(np.int64)) for w in BLEND_WEIGHTS}
        weight = max(BLEND_WEIGHTS, key=lambda w: (blends[w][0], -w))  # ties: the smaller n-gram weight
        kept = blends[weight][0] > max(blends[0.0][0], blends[1.0][0])
        report["ngrams"] = {
            "train": config.train, "train_texts": len(train.texts), "C": probe.C,
            "score_by_C": {str(c): s for c, s in c_scores.items()},
            "alone": {"score": blends[1.0][0], "by_domain": blends[1.0][1]},
            "blend_scores": {str(w): s for w, (s, _) in blends.items()},
            "best_weight": weight, "best": {"score": blends[weight][0], "by_domain": blends[weight][1]},
            "kept": kept,
        }
        if kept:
            classifier.ngrams, classifier.ngram_weight = probe, float(weight)
            final_scores = (1 - weight) * lm_scores + weight * ngram_scores
            log.info(f"n-gram part kept at weight {weight:g}: selection score {100 * blends[weight][0]:.2f}% against "
                     f"{100 * blends[0.0][0]:.2f}% for the language model alone and {100 * blends[1.0][0]:.2f}% for "
                     "the n-grams alone")
        else:
            log.info(f"n-gram part not kept: the best blend (weight {weight:g}, {100 * blends[weight][0]:.2f}%) does not "
                     f"beat both the language model alone ({100 * blends[0.0][0]:.2f}%) and the n-grams alone "
                     f"({100 * blends[1.0][0]:.2f}%)")
    temperature = fit_temperature(final_scores, valid.labels)
    classifier.temperature = temperature
    before = reliability(1 / (1 + np.exp(-final_scores)), valid.labels)
    after = reliability(1 / (1 + np.exp(-final_scores / temperature)), valid.labels)
    report["temperature"] = temperature
    report["selection_ece"] = {"before": before.to_dict(), "after": after.to_dict()}
    report["seconds"] = round(time.perf_counter() - began, 1)
    _write(config, classifier, report, [("before", before), (f"after (T = {temperature:.2f})", after)],
           plot_reliability)
    log.info(f"temperature {temperature:.3f}: expected calibration error on the selection texts {before.ece:.4f} -> "
             f"{after.ece:.4f}")
    print(f"calibrated classifier written to {config.out}/ (classify -classifier {config.out})")


def _write(config, classifier, report: dict, curves, plot_reliability) -> None:
    """The output directory whole: staged beside it, then renamed into place."""
    out = Path(config.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.is_dir():
        out.rmdir()  # empty (checked before any work)
    source = Path(classifier.source).parent
    with storage.replace_directory(out) as staging:
        shutil.copytree(classifier.model.path, staging / "model")
        for name in SOURCE_RECORDS:  # the run the classifier came from, kept beside it
            if (source / name).is_file():
                shutil.copyfile(source / name, staging / name)
        classifier.model = dataclasses.replace(classifier.model, path="model")  # relative: the folder moves whole
        classifier.save(staging)
        storage.write_json(staging / "calibration.json", report)
        plot_reliability(curves, staging / "reliability.png", title="selection texts: before and after calibration")
