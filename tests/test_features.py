import numpy as np
import pytest
import torch

from sentiment_discovery import UserError, preprocess_text
from sentiment_discovery.features import length_sorted_batches

from conftest import make_model, write_csv

TEXTS = ["great movie!", "I hated every minute of this long and boring film.", "ok", "Caf\u00e9 &amp; cr\u00e8me <br />"]


@pytest.mark.parametrize("rnn_type", ["mlstm", "lstm"])
def test_featurize_is_padding_invariant(rnn_type):
    model = make_model(rnn_type=rnn_type, layers=2)
    together = model.featurize(TEXTS, batch_size=4)
    alone = np.stack([model.featurize([text], batch_size=1)[0] for text in TEXTS])
    assert together.dtype == np.float32 and together.shape == (4, 16)
    np.testing.assert_allclose(together, alone, rtol=1e-5, atol=1e-6)


def test_featurize_is_final_cell_state_of_preprocessed_bytes(small_model):
    text = "Not bad &amp; fun\nat all"
    data = preprocess_text(text, small_model.text_options)
    assert data == b"\n Not bad & fun at all "
    tokens = torch.tensor([list(data)])
    _, state = small_model(tokens)
    np.testing.assert_allclose(small_model.featurize([text])[0], state.cell[0][0].detach().numpy(), rtol=1e-6)


def test_featurize_restores_order_and_handles_long_texts(small_model):
    texts = ["a" * 600, "b", "c" * 300, "dd"]
    features = small_model.featurize(texts, batch_size=2)
    for index, text in enumerate(texts):
        np.testing.assert_allclose(features[index], small_model.featurize([text])[0], rtol=1e-5, atol=1e-6)


def test_featurize_without_preprocessing_and_errors(small_model):
    raw = small_model.featurize(["abc"], preprocess=False)
    np.testing.assert_allclose(raw, small_model.featurize([b"abc"]))
    with pytest.raises(UserError, match="text 1 is empty"):
        small_model.featurize(["fine", ""], preprocess=False)
    with pytest.raises(UserError, match="text 0 is a int"):
        small_model.featurize([3])


def test_length_sorted_batches_cover_every_index_once():
    batches = length_sorted_batches([5, 1, 9, 3, 7], 2)
    assert [list(b) for b in batches] == [[2, 4], [0, 3], [1]]


@pytest.mark.parametrize("layers", [1, 2])
def test_mean_pooling_is_the_mean_cell_state_over_the_text_bytes(layers):
    model = make_model(layers=layers)
    texts = ["a fine film", "x" * 700, "no"]  # one text spans three featurizing chunks
    pooled = model.featurize(texts, batch_size=3, pooling="mean")
    for index, text in enumerate(texts):
        data = preprocess_text(text, model.text_options)
        with torch.no_grad():
            cells = model.encode(torch.tensor([list(data)]), return_cell_sequences=True).cell_sequences[-1]
        np.testing.assert_allclose(pooled[index], cells[0].mean(dim=0).numpy(), rtol=1e-4, atol=1e-6)
    # The mean is not the final state, and each text's padding in the batch is excluded.
    assert not np.allclose(pooled, model.featurize(texts))
    alone = np.stack([model.featurize([text], pooling="mean")[0] for text in texts])
    np.testing.assert_allclose(pooled, alone, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_one_pass_gives_every_pooling_exactly_as_alone(precision):
    from sentiment_discovery.features import featurize_poolings

    model = make_model(layers=2)
    texts = ["a fine film", "x" * 300, "no"]
    every = ("mean", "final", "max", "concat")
    pooled = featurize_poolings(model, texts, every, batch_size=2, precision=precision)
    assert sorted(pooled) == sorted(every)
    for pooling in every:
        np.testing.assert_array_equal(pooled[pooling], model.featurize(texts, batch_size=2, pooling=pooling, precision=precision))
    with pytest.raises(UserError, match="pooling must be one of final, mean, max, concat, not 'median'"):
        featurize_poolings(model, texts, ("mean", "median"))


def test_unknown_pooling_and_layer_are_refused(small_model):
    with pytest.raises(UserError, match="pooling must be one of final, mean, max, concat, not 'median'"):
        small_model.featurize(["fine"], pooling="median")
    with pytest.raises(UserError, match="layer 3 does not exist: the model has 1 layer"):
        small_model.featurize(["fine"], layer=3)


def test_featurize_command_writes_the_pooled_features(tmp_path):
    from sentiment_discovery import cli, save_model

    model = make_model()
    save_model(model, tmp_path / "model")
    texts = ["a fine film", "dull, dull, dull"]
    write_csv(tmp_path / "texts.csv", [(text,) for text in texts], header=("sentence",))
    for pooling in ("final", "mean"):
        output = tmp_path / f"{pooling}.npy"
        assert cli.main(["featurize", "--model", str(tmp_path / "model"), "--input", str(tmp_path / "texts.csv"),
                         "--output", str(output), "-pooling", pooling]) == 0
        np.testing.assert_array_equal(np.load(output), model.featurize(texts, pooling=pooling))


def test_weights_are_prepared_once_per_featurize_and_again_after_a_change(monkeypatch):
    """Within featurize each layer's weight norm (and packing) is done once, not per batch;
    the features are exactly those of preparing them on every call."""
    import contextlib

    from sentiment_discovery import features as features_module
    from sentiment_discovery.model import MLSTMLayer
    from sentiment_discovery.prepared_weights import prepared_weights

    model = make_model(weight_norm=True, layers=2)
    texts = [f"text number {i} " * (1 + i % 3) for i in range(10)]
    calls = []
    original = MLSTMLayer.effective_weights
    monkeypatch.setattr(MLSTMLayer, "effective_weights", lambda self: calls.append(self) or original(self))
    kept = model.featurize(texts, batch_size=3)  # 4 batches
    assert len(calls) == 2  # once per layer
    monkeypatch.setattr(features_module, "prepared_weights", contextlib.nullcontext)
    calls.clear()
    fresh = model.featurize(texts, batch_size=3)
    assert len(calls) == 8
    np.testing.assert_array_equal(kept, fresh)
    # A parameter changed in place within the block is prepared again.
    tokens = torch.tensor([list(b"\n a review ")])
    with torch.no_grad(), prepared_weights():
        model(tokens)
        model.layers[0].wh.mul_(0.5)
        changed, _ = model(tokens)
    with torch.no_grad():
        expected, _ = model(tokens)
    torch.testing.assert_close(changed, expected, rtol=0, atol=0)
