"""The flags of ``sentiment-discovery finetune`` (run: :mod:`sentiment_discovery.recipes.finetune`)."""

import dataclasses

from ..foundation.choices import DECAYS, HEAD_INITS, POOLINGS, PRECISIONS
from ..foundation.options import option, option_like
from .common import ExperimentConfig
from .transfer import TransferConfig


@dataclasses.dataclass(kw_only=True)
class FinetuneConfig(ExperimentConfig):
    load_model: str | None = option(
        None, help="model directory to start from (default: the pre-trained language model shipped with the "
        "package, default_model/frozen/model)",
        aliases=["model"],
    )
    # ---- data: the flags and readers of `transfer` (declared there)
    train: str = option_like(TransferConfig, "train")
    valid: str | None = option_like(TransferConfig, "valid")
    test: str | None = option(None, help="test file, evaluated once with the best weights; labelled unless -no_test_eval")
    text_key: str = option_like(TransferConfig, "text_key")
    label_key: str = option("label", help="column or key holding the label")
    input_format: str | None = option_like(TransferConfig, "input_format")
    delim: str | None = option_like(TransferConfig, "delim")
    split: float = option_like(TransferConfig, "split")
    drop_unlabeled: bool = option_like(TransferConfig, "drop_unlabeled")
    binarize_sent: bool = option_like(TransferConfig, "binarize_sent")
    multiclass: bool = option_like(
        TransferConfig, "multiclass", help="labels are any integers (such as 1-5 stars), each distinct training label "
        "a class; the head has one output per class"
    )
    no_test_eval: bool = option(False, help="the test file has no labels: report no test accuracy")
    domain_key: str | None = option(
        None, help="column or key of -valid naming each text's domain (such as sst2, amazon_summary): the validation "
        "accuracy that keeps the best weights is then the mean of the domains' accuracies, each domain counting the same",
    )
    max_text_length: int = option(
        1024, help="longest text fed in training, in bytes: longer ones keep their first and last halves (0: whole)",
        minimum=0,  # and 1 to 15 are refused in check_flags: 0 or at least 16 is not one range
    )
    # ---- the classifier
    pooling: str = option(
        "mean", choices=POOLINGS,
        help="what the head reads: the top layer's cell state after the last byte (final), its mean or max over "
        "the text, or all three joined (concat)",
    )
    head_init: str = option(
        "probe", choices=HEAD_INITS,
        help="start the head as an L2 logistic regression fitted on the pooled features (C chosen on validation), "
        "or at random",
    )
    dropout: float = option(0.0, help="dropout on the pooled features the head reads", minimum=0, below=1)
    # ---- optimisation
    epochs: float = option(1.0, help="passes over the training texts (fractions allowed)", above=0)
    batch_size: int = option(32, help="texts per update", minimum=1)
    lr: float = option(1e-4, help="Adam learning rate of the language model's top layer", above=0)
    head_lr: float = option(3e-4, help="Adam learning rate of the head", above=0)
    layer_decay: float = option(
        1.0, help="each layer below the top gets this times the learning rate of the one above (ULMFiT: 1/2.6)", above=0
    )
    warmup: float = option(
        0.0, help="fraction of the updates over which the learning rates rise linearly from 0", minimum=0, below=1
    )
    decay: str = option("constant", choices=DECAYS, help="after the warm-up: decay to 0 linearly, by cosine, or none")
    unfreeze_every: float = option(
        0.0, help="gradual unfreezing: train the head alone, then one more layer (top down) every this many epochs "
        "(0: every weight from the start)",
        minimum=0,
    )
    lm_loss_weight: float = option(
        0.0, help="weight of the auxiliary next-byte loss (nats/byte) added to the classification loss", minimum=0
    )
    clip: float = option(1.0, help="clip the gradient norm of all weights to this (0: off)", minimum=0)
    precision: str = option(
        "auto", choices=PRECISIONS,
        help="precision of the matrix products: auto is bf16 on CPUs and GPUs with native bf16, else fp32; "
        "the classifier records it and classify featurizes the same way",
    )
    # ---- evaluation, stopping, saving
    eval_every: float = option(0.25, help="evaluate on validation every this many epochs (and at the end)", above=0)
    patience: int = option(
        4, help="stop after this many evaluations in a row without a better validation accuracy (0: never stop early)",
        minimum=0,
    )
    eval_batch_size: int = option(64, help="texts per batch when evaluating", minimum=1)
    max_steps: int = option(0, help="stop this run after this many updates in all, saving a checkpoint (0: off)", minimum=0)
    resume: bool = option(False, help="continue exactly from <experiment>/finetune/checkpoint/")


COMMAND_CONFIG = FinetuneConfig
