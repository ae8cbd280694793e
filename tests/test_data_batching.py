import json

import numpy as np
import pytest
import torch

from sentiment_discovery.data.batching import LMBatch, TransposedBatcher
from sentiment_discovery.data.corpus import ByteCorpus
from sentiment_discovery.foundation.errors import UserError

# Four texts, 10 bytes: text starts at bytes 0 (a), 3 (d), 5 (f), 9 (j).
TOY = [b"abc", b"de", b"fghi", b"j"]


def rows(tensor: torch.Tensor) -> list[bytes]:
    return [bytes(row.tolist()) for row in tensor]


def epoch_batches(batcher) -> list[LMBatch]:
    return list(batcher)


def test_transposed_streams_with_wrap_exact_bytes():
    # 2 streams x 2 bytes per batch: 3 batches per epoch, streams of 6 bytes starting at 0 and 6.
    batcher = TransposedBatcher(ByteCorpus.from_texts(TOY), batch_size=2, seq_length=2)
    assert batcher.batches_per_epoch == 3
    first = epoch_batches(batcher)
    assert [rows(b.inputs) for b in first] == [[b"ab", b"gh"], [b"cd", b"ij"], [b"ef", b"ab"]]
    assert [rows(b.targets) for b in first] == [[b"bc", b"hi"], [b"de", b"ja"], [b"fg", b"bc"]]
    for batch in first:
        assert batch.inputs.dtype == torch.int64 and batch.targets.dtype == torch.int64
        assert batch.reset.dtype == torch.bool and batch.inputs.shape == (2, 2)
    # The next epoch continues every stream where it stopped (shifted by one stream).
    second = epoch_batches(batcher)
    assert batcher.epoch == 1
    assert [rows(b.inputs) for b in second] == [[b"gh", b"cd"], [b"ij", b"ef"], [b"ab", b"gh"]]
    assert [rows(b.targets) for b in second] == [[b"hi", b"de"], [b"ja", b"fg"], [b"bc", b"hi"]]


def test_reset_at_every_text_start_persist_state_0():
    batcher = TransposedBatcher(ByteCorpus.from_texts(TOY), 2, 2, persist_state=0)
    first, second = epoch_batches(batcher), epoch_batches(batcher)
    # Row 1 starts mid-text at 'g': reset because it is the first step of the first epoch.
    assert [b.reset.tolist() for b in first] == [
        [[True, False], [True, False]],
        [[False, True], [False, True]],
        [[False, True], [True, False]],
    ]
    # Wrapped streams continue: no extra reset at the start of epoch 2.
    assert [b.reset.tolist() for b in second] == [
        [[False, False], [False, True]],
        [[False, True], [False, True]],
        [[True, False], [False, False]],
    ]


def test_reset_at_shard_starts_persist_state_1():
    # Two shards: texts 0-1 and 2-3, so resets only before 'a' (byte 0) and 'f' (byte 5).
    batcher = TransposedBatcher(ByteCorpus.from_texts(TOY, num_shards=2), 2, 2, persist_state=1)
    assert [b.reset.tolist() for b in epoch_batches(batcher)] == [
        [[True, False], [True, False]],
        [[False, False], [False, False]],
        [[False, True], [True, False]],
    ]


def test_never_reset_persist_state_minus_1():
    batcher = TransposedBatcher(ByteCorpus.from_texts(TOY), 2, 2, persist_state=-1)
    for _ in range(2):
        assert all(not b.reset.any() for b in epoch_batches(batcher))


def test_no_wrap_drops_the_remainder_and_restarts_each_epoch():
    # (10 - 1) // 4 = 2 batches: streams are bytes 0-3 and 4-7; 'ij' is left out.
    batcher = TransposedBatcher(ByteCorpus.from_texts(TOY), 2, 2, wrap=False)
    for _ in range(2):
        batches = epoch_batches(batcher)
        assert [rows(b.inputs) for b in batches] == [[b"ab", b"ef"], [b"cd", b"gh"]]
        assert [rows(b.targets) for b in batches] == [[b"bc", b"fg"], [b"de", b"hi"]]
        # 'f' (byte 5) starts a text; each epoch starts with a reset since the streams jump back.
        assert [b.reset.tolist() for b in batches] == [[[True, False], [True, True]], [[False, True], [False, False]]]


def test_shuffle_reorders_texts_per_epoch_reproducibly():
    texts = [bytes([65 + i]) * (i + 1) for i in range(6)]  # A, BB, CCC, ...: 21 bytes
    corpus = ByteCorpus.from_texts(texts)
    batcher = TransposedBatcher(corpus, 1, 7, shuffle=True, seed=3, persist_state=0)
    for epoch in range(3):
        batches = epoch_batches(batcher)
        stream = b"".join(bytes(b.inputs[0].tolist()) for b in batches)
        order = np.random.default_rng([3, epoch]).permutation(6)
        expected = b"".join(texts[i] for i in order)
        assert stream == expected
        # A reset exactly where each text of the shuffled order begins.
        reset = torch.cat([b.reset[0] for b in batches]).tolist()
        starts = np.cumsum([0] + [len(texts[i]) for i in order[:-1]]).tolist()
        assert [i for i, flag in enumerate(reset) if flag] == starts
    again = TransposedBatcher(corpus, 1, 7, shuffle=True, seed=3)
    assert torch.equal(next(iter(again)).inputs, TransposedBatcher(corpus, 1, 7, shuffle=True, seed=3).batch_at(0, 0).inputs)
    orders = {tuple(np.random.default_rng([3, e]).permutation(6)) for e in range(3)}
    assert len(orders) > 1  # the order really changes between epochs


def positions_corpus(size: int) -> ByteCorpus:
    """Byte i holds the value i (size <= 256): every input says where it came from."""
    values = bytes(range(size))
    return ByteCorpus.from_texts([values[i : i + 7] for i in range(0, size, 7)])


@pytest.mark.parametrize("wrap", [False, True])
def test_ranks_get_disjoint_streams_that_cover_the_corpus(wrap):
    corpus = positions_corpus(250)
    world_size, batch_size, seq_length = 3, 2, 5
    single = TransposedBatcher(corpus, world_size * batch_size, seq_length, wrap=wrap)
    ranks = [
        TransposedBatcher(corpus, batch_size, seq_length, wrap=wrap, rank=r, world_size=world_size)
        for r in range(world_size)
    ]
    assert all(r.batches_per_epoch == single.batches_per_epoch for r in ranks)
    seen = []
    for batches in zip(single, *ranks):
        whole, parts = batches[0], batches[1:]
        assert torch.equal(whole.inputs, torch.cat([p.inputs for p in parts]))
        assert torch.equal(whole.reset, torch.cat([p.reset for p in parts]))
        for part in parts:
            seen.extend(part.inputs.flatten().tolist())
    steps = single.batches_per_epoch
    if wrap:
        # 250 bytes over 6 streams x 5 bytes: 9 batches, 270 inputs; each byte at least once.
        assert steps == 9 and sorted(set(seen)) == list(range(250)) and len(seen) == 270
    else:
        # (250 - 1) // 30 = 8 batches: 240 bytes, each exactly once.
        assert steps == 8 and sorted(seen) == list(range(240))


def test_resume_from_saved_position_gives_the_same_batches():
    corpus = positions_corpus(200)
    options = dict(batch_size=3, seq_length=4, shuffle=True, seed=5, persist_state=1)
    reference = TransposedBatcher(corpus, **options)
    expected = [b for _ in range(3) for b in reference]  # three uninterrupted epochs
    interrupted = TransposedBatcher(corpus, **options)
    got = []
    for stop_after in (7, 20, 11):  # stops mid-epoch and at an epoch end
        for batch in interrupted:
            got.append(batch)
            if len(got) == stop_after or len(got) == len(expected):
                break
        state = json.loads(json.dumps(interrupted.state_dict()))
        interrupted = TransposedBatcher(corpus, **options)
        interrupted.load_state_dict(state)
        if len(got) >= len(expected):
            break
    while len(got) < len(expected):
        got.extend(interrupted)
    assert len(got) == len(expected)
    for a, b in zip(got, expected):
        assert torch.equal(a.inputs, b.inputs) and torch.equal(a.targets, b.targets) and torch.equal(a.reset, b.reset)


def test_breaking_out_and_iterating_again_continues_the_epoch():
    batcher = TransposedBatcher(ByteCorpus.from_texts(TOY), 2, 2)
    iterator = iter(batcher)
    next(iterator)
    assert batcher.state_dict()["step"] == 1
    rest = list(batcher)
    assert len(rest) == 2 and batcher.epoch == 0
    assert len(list(batcher)) == 3 and batcher.epoch == 1


def test_resume_refuses_a_different_layout():
    corpus = ByteCorpus.from_texts(TOY)
    state = TransposedBatcher(corpus, 2, 2).state_dict()
    other = TransposedBatcher(corpus, 1, 2)
    with pytest.raises(UserError) as error:
        other.load_state_dict(state)
    assert str(error.value) == (
        "cannot resume the data position: batch_size 2 -> 1; resume with the same corpus and flags"
    )


def test_bad_settings_are_user_errors():
    corpus = ByteCorpus.from_texts(TOY)
    with pytest.raises(UserError, match="-persist_state must be 0 \\(reset per text\\), 1 \\(per shard\\) or -1"):
        TransposedBatcher(corpus, 2, 2, persist_state=2)
    with pytest.raises(UserError) as error:
        TransposedBatcher(corpus, 4, 4, wrap=False)
    assert str(error.value) == (
        "the corpus has 10 bytes, fewer than one batch of world_size x batch_size x seq_length = 16 (+1) needs; "
        "drop -no_wrap or use smaller batches"
    )
    with pytest.raises(UserError, match="rank 2 is not in 0..1"):
        TransposedBatcher(corpus, 1, 2, rank=2, world_size=2)
    with pytest.raises(UserError, match="is empty"):
        TransposedBatcher(ByteCorpus.from_texts([]), 1, 2)


def test_tiny_corpus_with_wrap_still_yields_full_batches():
    batcher = TransposedBatcher(ByteCorpus.from_texts([b"xyz"]), 2, 4)
    (batch,) = list(batcher)
    # One batch of 4 bytes per stream; stream 1 starts at byte 4, which is byte 1 of the circle.
    assert rows(batch.inputs) == [b"xyzx", b"yzxy"]
    assert rows(batch.targets) == [b"yzxy", b"zxyz"]
