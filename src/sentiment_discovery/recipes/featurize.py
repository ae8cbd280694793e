"""``sentiment-discovery featurize``: a text file in, a [texts, rnn_size] float32 .npy out."""

import contextlib
from pathlib import Path

import numpy as np
import torch

from .. import sharding
from ..checkpoint import load_model
from ..configs.featurize import FeaturizeConfig
from ..data.readers import read_texts
from ..features import CHUNK_LENGTH, pooled_width
from ..foundation import log, memory, storage
from ..foundation.errors import UserError
from ..foundation.options import check_options
from ..runtime import configure_threads, select_device
from .sharded import featurize_shares


def run(config: FeaturizeConfig) -> None:
    check_options(config)
    output = Path(config.output)
    if output.suffix.lower() != ".npy":
        raise UserError(f"-output writes a NumPy .npy file; name it .npy, not {output.name}")
    storage.check_output(output, [config.input, config.model])
    # Under torchrun rank 0 writes the output and holds its lock (docs/performance.md).
    with storage.output_lock(output) if log.process_rank() == 0 else contextlib.nullcontext():
        configure_threads()
        context = sharding.join(config.cuda)  # under torchrun: the process group, each rank's GPU
        model = load_model(config.model, device=select_device(config.cuda))
        texts = read_texts(config.input, text_key=config.text_key, delim=config.delim)
        if not texts:
            raise UserError(f"{config.input} holds no texts under {config.text_key!r}")
        check_memory(model, texts, config)
        if context.distributed:  # each process featurizes its share; rank 0 writes all of them
            features = featurize_shares(config, model, texts, context)
            if features is None:
                return
        else:
            features = model.featurize(
                texts, batch_size=config.batch_size, preprocess=not config.no_preprocess, layer=config.layer,
                progress=True, pooling=config.pooling, precision=config.precision,
            )
        with storage.atomic_file(output, "wb") as handle:
            np.save(handle, features)
        storage.remove(sharding.parts_directory(output))  # a run's pieces go once its output is whole
    log.info(f"wrote {features.shape[0]} x {features.shape[1]} features to {output}")


def check_memory(model, texts, config: FeaturizeConfig) -> None:
    """Refuse a -batch_size whose batch of cell states (with the features) cannot fit, before featurizing."""
    streams = min(config.batch_size, len(texts))
    length = min(CHUNK_LENGTH, max(len(text) for text in texts) + 3)  # + the padding, roughly
    rnn_size, layers = model.config.rnn_size, model.config.layers
    needed = memory.featurize_bytes(len(texts), streams, length, rnn_size, layers,
                                    pooled_width(rnn_size, config.pooling))
    available, where = None, "this machine"
    if model.device.type == "cuda":
        available, where = torch.cuda.mem_get_info(model.device)[0], "the GPU"
    memory.check_fits(needed, f"featurizing {len(texts)} texts in batches of {streams}", "lower -batch_size",
                      available=available, where=where)
