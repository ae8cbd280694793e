"""``sentiment-discovery benchmark``: training and featurizing speed of the mLSTM on this machine.

Training is timed as whole updates (forward, backward, Adam step) on random bytes;
featurizing as the one featurize loop (``features.featurize``) over texts of
``seq_length`` bytes. Each is warmed up, then repeated; the median, min and max are
reported with the model's matrix-multiply FLOPs per character and the fraction of this
machine's measured matrix-multiply peak they reach. With ``--baseline`` a second mLSTM
implementation is timed in the same process, runs interleaved, and the ratios printed.
The measuring itself is in :mod:`sentiment_discovery.speed`.
"""

from ..configs.benchmark import BenchmarkConfig
from ..foundation import log, storage
from ..speed import benchmark, format_report


def run(config: BenchmarkConfig) -> None:
    report = benchmark(config)
    print(format_report(report))
    if config.json:
        path = storage.write_json(config.json, report)
        log.info(f"wrote {path}")
