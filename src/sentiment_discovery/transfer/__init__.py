"""Sentiment transfer: L1 logistic regression on a language model's features, and the sentiment neuron.

Components used by the ``transfer`` and ``classify`` recipes (and usable from Python), one
module per idea:

- ``cache``: text hashing, :class:`ModelIdentity` (what features depend on besides the
  texts), :class:`FeatureCache` and :func:`featurize_cached`;
- ``probe``: :class:`LinearProbe` (a logistic regression over some units), fitting one with
  liblinear's L1 penalty (:class:`PreparedInputs`), unit ranking and signs, the threshold-0 rule;
- ``labels``: the check every set of labels passes before a fit, and the classes of ``-multiclass``;
- ``sweep``: the regularisation sweep, one fit per C, C chosen on validation accuracy
  exactly as the paper's code did (grid 2^-8 ... 2^0, liblinear, raw features);
- ``classifier``: :class:`SentimentClassifier`, saved as JSON (never a pickle) and checked
  against the model, and :func:`fit_sentiment_classifier`, the paper's procedure;
- ``report``: a classifier's accuracies on its splits (:func:`evaluate`), the 2017 result lines
  (:func:`seed_output`), a probe's results entry, the predictions CSV;
- ``results``: ``results.json`` of ``transfer`` and ``finetune`` (:class:`TransferResults`,
  :class:`FinetuneResults`);
- ``curve``: the data-efficiency curve;
- ``plots``: the figures.

Every name below is importable from here (``from sentiment_discovery.transfer import
SentimentClassifier``). Probabilities are always computed here (``LinearProbe.decision_function``),
never by scikit-learn, so a classifier loaded from disk gives bit-identical probabilities.
"""

from ..foundation.errors import UserError
from ..foundation.locations import CLASSIFIER_FILE
from ..foundation.storage import file_sha256
from .cache import FeatureCache, FeatureRun, ModelIdentity, featurize_cached, texts_sha256
from .classifier import (
    CLASSIFIER_FORMAT,
    CLASSIFIER_FORMAT_VERSION,
    PROBE_NAMES,
    TOP_UNITS_SHOWN,
    SentimentClassifier,
    TransferFit,
    fit_sentiment_classifier,
)
from .curve import curve_seeds, curve_sizes, data_efficiency_curve, stratified_sample, summarize_curve
from .labels import check_labels, class_indices, is_default_classes, training_classes
from .plots import plot_data_efficiency, plot_unit_histogram, plot_unit_weights
from .probe import MAX_ITER, LinearProbe, PreparedInputs, rank_units, threshold_accuracy, unit_sign
from .report import (
    ClassifierScores,
    Evaluation,
    UnitScores,
    accuracy_text,
    class_report,
    domain_accuracies,
    evaluate,
    probe_report,
    seed_output,
    seed_result_lines,
    threshold_line,
    top_units_line,
    write_predictions,
)
from .results import FinetuneResults, RunResults, TransferResults
from .sweep import DEFAULT_C_GRID, Sweep, default_jobs, sweep_regularization

__all__ = [
    "CLASSIFIER_FILE", "CLASSIFIER_FORMAT", "CLASSIFIER_FORMAT_VERSION", "DEFAULT_C_GRID", "MAX_ITER", "PROBE_NAMES",
    "TOP_UNITS_SHOWN", "ClassifierScores", "Evaluation", "FeatureCache", "FeatureRun", "FinetuneResults", "LinearProbe",
    "ModelIdentity", "PreparedInputs", "RunResults", "SentimentClassifier", "Sweep", "TransferFit", "TransferResults",
    "UnitScores", "UserError", "accuracy_text", "check_labels", "class_indices", "class_report", "curve_seeds",
    "curve_sizes", "data_efficiency_curve", "default_jobs", "domain_accuracies", "evaluate", "featurize_cached", "file_sha256",
    "fit_sentiment_classifier", "is_default_classes", "plot_data_efficiency", "plot_unit_histogram", "plot_unit_weights", "probe_report",
    "rank_units", "seed_output", "seed_result_lines", "stratified_sample", "summarize_curve", "sweep_regularization",
    "texts_sha256", "threshold_accuracy", "threshold_line", "top_units_line", "training_classes", "unit_sign", "write_predictions",
]
