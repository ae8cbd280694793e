"""The flags of ``sentiment-discovery benchmark`` (run: :mod:`sentiment_discovery.recipes.benchmark`)."""

import dataclasses

from ..foundation.choices import MLSTM_IMPLEMENTATION_NAMES, PRECISIONS
from ..foundation.model_config import ModelConfig
from ..foundation.options import option, option_like
from .common import ExperimentConfig

MODES = ("both", "train", "featurize")
IMPLEMENTATIONS = MLSTM_IMPLEMENTATION_NAMES


@dataclasses.dataclass(kw_only=True)
class BenchmarkConfig:
    # the architecture measured: ModelConfig's settings, with a smaller default size
    rnn_size: int = option_like(ModelConfig, "rnn_size", default=256)
    embed_size: int = option_like(ModelConfig, "embed_size")
    layers: int = option_like(ModelConfig, "layers")
    no_weight_norm: bool = option(False, help="without weight normalisation (on by default, as in the release)")
    batch_size: int = option(32, help="sequences per training batch, and texts per featurize batch", minimum=1)
    seq_length: int = option(64, help="bytes per training sequence and per featurized text", minimum=1)
    precision: str = option(
        "auto", choices=PRECISIONS,
        help="matrix products in fp32, or autocast to bf16 / fp16; auto: bf16 where the hardware runs it natively",
    )
    implementation: str = option("fast", choices=IMPLEMENTATIONS, help="mLSTM implementation to measure")
    baseline: str | None = option(
        None, choices=IMPLEMENTATIONS, help="also time this one, runs interleaved in the same process, and print ratios"
    )
    mode: str = option("both", choices=MODES, help="what to time")
    repeats: int = option(5, help="timed runs of each measurement (median, min and max are reported)", minimum=1)
    warmup: int = option(1, help="untimed runs before the timed ones", minimum=0)
    threads: int | None = option(
        None, help="CPU threads for torch (default: OMP_NUM_THREADS if set, else the cores idle at start)", minimum=1
    )
    system_allocator: bool = option(
        False, help="leave the C allocator as it is (by default freed buffers are kept for reuse; docs/performance.md)"
    )
    json: str | None = option(None, help="also write the results to this JSON file")
    cuda: bool = option_like(ExperimentConfig, "cuda")
    seed: int = option_like(ExperimentConfig, "seed")


COMMAND_CONFIG = BenchmarkConfig
