"""The n-gram part of a classifier: TF-IDF word and character n-grams and a logistic regression over them.

:class:`NgramProbe` scores texts as a bag of word 1-2 grams and character 2-5 grams (within
words, ``char_wb``), each block TF-IDF weighted (sublinear term frequency) and L2-normalised,
as the TF-IDF baseline of ``benchmarks/tfidf_baseline.py`` does. The n-grams are hashed
(scikit-learn's ``HashingVectorizer``) into a fixed number of columns, so the part is saved
as four arrays (the inverse document frequencies and the weights of each block) in a
safetensors file beside ``classifier.json``, with no vocabulary and no pickle.

The TF-IDF weighting and the scores are computed here from the saved arrays (not by a fitted
scikit-learn transformer), so a part read back from disk gives identical scores whatever
scikit-learn version reads it. scikit-learn is imported inside the functions that use it
(lazy: it takes over a second to import), so that a saved classifier loads without it until it predicts.
"""

import dataclasses
import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load, save
from scipy.sparse import hstack

from ..foundation import storage
from ..foundation.errors import UserError

NGRAM_FILE = "ngrams.safetensors"
NGRAM_FORMAT = "tfidf-hashed-word1-2-charwb2-5"
# Columns per block: 2^18 keeps collisions rare for the ~10^5 n-grams of a few MB of text (measured
# against a vocabulary-based TfidfVectorizer in docs/results.md) and the file at 4 MiB.
DEFAULT_FEATURES = 2**18
BLOCKS = {"word": dict(analyzer="word", ngram_range=(1, 2)), "char": dict(analyzer="char_wb", ngram_range=(2, 5))}
# L2 strengths tried (rows have norm 1 per block, so useful C are larger than for dense features).
C_GRID = tuple(float(2.0**power) for power in range(-1, 6))


def _hasher(block: str, n_features: int):
    from sklearn.feature_extraction.text import HashingVectorizer

    return HashingVectorizer(n_features=n_features, alternate_sign=False, norm=None, lowercase=True,
                             dtype=np.float64, **BLOCKS[block])


def _counts(texts: Sequence[str], block: str, n_features: int):
    return _hasher(block, n_features).transform(list(texts)).tocsr()


def _tfidf(counts, idf: np.ndarray):
    """Sublinear term frequency (1 + log tf) times idf, each row scaled to norm 1: TfidfVectorizer's rule."""
    from sklearn.preprocessing import normalize

    weighted = counts.copy()
    weighted.data = 1.0 + np.log(weighted.data)
    weighted = weighted.multiply(idf.astype(np.float64)[None, :]).tocsr()
    return normalize(weighted, norm="l2", copy=False)


def _idf(counts, texts: int) -> np.ndarray:
    """Smoothed inverse document frequency, ``log((1 + n) / (1 + df)) + 1`` (TfidfVectorizer's default)."""
    document_frequency = np.bincount(counts.indices, minlength=counts.shape[1])
    return (np.log((1.0 + texts) / (1.0 + document_frequency)) + 1.0).astype(np.float32)


@dataclasses.dataclass
class NgramProbe:
    """``tfidf_word(x) @ word_coef + tfidf_char(x) @ char_coef + intercept``: a binary logistic regression's logit."""
    word_idf: np.ndarray  # float32 [n_features]
    char_idf: np.ndarray
    word_coef: np.ndarray
    char_coef: np.ndarray
    intercept: float
    C: float

    @property
    def n_features(self) -> int:
        return int(self.word_idf.shape[0])

    def matrix(self, texts: Sequence[str]):
        """The [texts, 2 n_features] sparse TF-IDF rows (word block, then character block)."""
        if isinstance(texts, str):
            raise UserError("pass a list of texts, not a single string")
        blocks = [_tfidf(_counts(texts, block, self.n_features), getattr(self, f"{block}_idf")) for block in BLOCKS]
        return hstack(blocks, format="csr")

    def decision_function(self, texts: Sequence[str]) -> np.ndarray:
        """The logit of label 1 for each text, float64 [N]."""
        coef = np.concatenate([self.word_coef, self.char_coef]).astype(np.float64)
        return np.asarray(self.matrix(texts) @ coef).ravel() + self.intercept

    # ---- saving and loading

    def serialized(self) -> bytes:
        """The safetensors bytes of the four arrays (float32), the same bytes for the same part."""
        return save({name: np.ascontiguousarray(getattr(self, name), dtype=np.float32)
                     for name in ("word_idf", "char_idf", "word_coef", "char_coef")})

    def to_dict(self) -> dict:
        """What ``classifier.json`` says of the part: its settings and the sha256 of its arrays' file."""
        return {"format": NGRAM_FORMAT, "n_features": self.n_features, "C": self.C, "intercept": self.intercept,
                "file": NGRAM_FILE, "sha256": hashlib.sha256(self.serialized()).hexdigest()}

    def save(self, directory: str | os.PathLike) -> Path:
        """The arrays into ``directory/ngrams.safetensors``, written whole."""
        return storage.write_bytes(Path(directory) / NGRAM_FILE, self.serialized())

    @classmethod
    def load(cls, directory: str | os.PathLike, values: dict, source: str | os.PathLike) -> "NgramProbe":
        """The part that ``classifier.json`` (``source``) describes by ``values``, its arrays read from ``directory``."""
        if not isinstance(values, dict) or values.get("format") != NGRAM_FORMAT:
            raise UserError(f"{source}: 'ngrams' is not a {NGRAM_FORMAT} n-gram part; refit the classifier")
        path = Path(directory) / str(values.get("file", NGRAM_FILE))
        if not path.is_file():
            raise UserError(f"{source} has an n-gram part, but its weights {path} are missing; copy the whole "
                            "classifier directory")
        if values.get("sha256") != storage.file_sha256(path):
            raise UserError(f"{path} is not the n-gram weights {source} was saved with (sha256 differs); "
                            "copy the whole classifier directory again")
        try:
            arrays = load(path.read_bytes())
            probe = cls(**{name: arrays[name] for name in ("word_idf", "char_idf", "word_coef", "char_coef")},
                        intercept=float(values["intercept"]), C=float(values["C"]))
        except (KeyError, TypeError, ValueError, SafetensorError) as error:
            raise UserError(f"{path} is incomplete or corrupt ({type(error).__name__}: {error})") from None
        width = int(values.get("n_features", -1))
        if any(getattr(probe, name).shape != (width,) for name in ("word_idf", "char_idf", "word_coef", "char_coef")):
            raise UserError(f"{path}: the arrays do not hold {width} columns each, as {source} says")
        return probe


def fit_ngram_probe(texts: Sequence[str], labels: np.ndarray, select, *, c_grid: Sequence[float] = C_GRID,
                    n_features: int = DEFAULT_FEATURES, seed: int = 0) -> tuple[NgramProbe, dict[float, float]]:
    """The n-gram part fitted on ``texts``, C chosen by ``select(probe) -> score`` (higher is better).

    Returns the chosen part and the score of each C tried.
    """
    from sklearn.linear_model import LogisticRegression

    labels = np.asarray(labels)
    if not set(np.unique(labels).tolist()) <= {0, 1}:
        raise UserError("the n-gram part is binary: labels must be 0 or 1")
    counts = {block: _counts(texts, block, n_features) for block in BLOCKS}
    idf = {block: _idf(counts[block], len(texts)) for block in BLOCKS}
    matrix = hstack([_tfidf(counts[block], idf[block]) for block in BLOCKS], format="csr")
    scores, best = {}, None
    for C in c_grid:
        regression = LogisticRegression(C=C, solver="liblinear", random_state=seed).fit(matrix, labels)
        coef = regression.coef_[0]
        probe = NgramProbe(word_idf=idf["word"], char_idf=idf["char"], word_coef=coef[:n_features].astype(np.float32),
                           char_coef=coef[n_features:].astype(np.float32), intercept=float(regression.intercept_[0]),
                           C=float(C))
        scores[float(C)] = float(select(probe))
        if best is None or scores[float(C)] > scores[best.C]:
            best = probe
    return best, scores
