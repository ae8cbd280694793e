"""The quick start: build a small byte-level mLSTM, save it, load it back, featurize sentences."""

import tempfile
from pathlib import Path

import torch

import sentiment_discovery as sd

SENTENCES = [
    "This is one of the best films I have seen in years.",
    "A dull, lifeless script and wooden acting.",
    "It was fine.",
]


def main() -> None:
    torch.manual_seed(0)
    model = sd.ByteLM(sd.ModelConfig(rnn_size=128, embed_size=64))
    with tempfile.TemporaryDirectory() as tmp:
        directory = sd.save_model(model, Path(tmp) / "small-mlstm")
        loaded = sd.load_model(directory)
        features = loaded.featurize(SENTENCES)
    print(f"features: {features.shape[0]} texts x {features.shape[1]} units (final cell state)")
    for sentence, row in zip(SENTENCES, features):
        print(f"  {row[:4].round(3)} ... {sentence}")


if __name__ == "__main__":
    main()
