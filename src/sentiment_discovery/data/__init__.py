"""Data components: readers, the on-disk byte corpus, batching, and dataset downloads.

Submodules are imported where they are used (``from sentiment_discovery.data.corpus
import build_corpus``) so that reading a CSV does not import torch.
"""
