"""Importers of published weights, checked against independent float64 NumPy forward passes.

The published files cannot be downloaded here, so each test writes small random weights in
exactly the published layout and compares the imported model with a re-implementation of
that system's own cell, written here from its description and not from our model code.
"""

import argparse
import json

import numpy as np
import pytest
import torch
from torch import nn

from sentiment_discovery import TextOptions, UserError, cli, importers, load_model
from sentiment_discovery.importers import import_weights, load_openai_weights, load_pytorch_checkpoint
from sentiment_discovery.foundation.text import OPENAI_TEXT_OPTIONS

E, H = 6, 12  # embedding and hidden sizes of the test weights (the releases: 64 and 4096)
TEXTS = [b"\n I loved this film, truly. ", b"\n awful ", b"\n It was fine, I guess; the ending dragged on. "]


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


# --------------------------------------------------------------------------- OpenAI


def openai_params(seed=0, hidden=H):
    """The 15 arrays of OpenAI's release, float32, in the release's shapes."""
    rng = np.random.default_rng(seed)
    normal = lambda *shape: rng.normal(0, 0.5, shape).astype(np.float32)  # noqa: E731
    gain = lambda n: rng.uniform(0.5, 1.5, n).astype(np.float32)  # noqa: E731
    return [
        normal(256, E), normal(E, 4 * hidden),
        normal(hidden, hidden), normal(hidden, hidden), normal(hidden, hidden), normal(hidden, hidden),
        normal(E, hidden), normal(hidden, hidden), normal(4 * hidden),
        gain(4 * hidden), gain(4 * hidden), gain(hidden), gain(hidden),
        normal(hidden, 256), normal(256),
    ]


def write_release(folder, params):
    folder.mkdir(parents=True, exist_ok=True)
    for index, array in enumerate(params):
        np.save(folder / f"{index}.npy", array)
    return folder


def openai_effective(params):
    """The release's weights with weight norm applied: tf.nn.l2_normalize(W, 0) * g."""
    p = [a.astype(np.float64) for a in params]
    normed = lambda w, g: w / np.sqrt(np.maximum((w**2).sum(0), 1e-12)) * g  # noqa: E731
    wh = np.concatenate(p[2:6], axis=1)
    return dict(
        embedding=p[0], wx=normed(p[1], p[9]), wh=normed(wh, p[10]), wmx=normed(p[6], p[11]),
        wmh=normed(p[7], p[12]), b=p[8], w=p[13], wb=p[14],
    )


def openai_reference(params, data):
    """OpenAI's mLSTM run over ``data`` from the zero state: final cell state and last logits."""
    w = openai_effective(params)
    h = c = np.zeros(w["wmh"].shape[0])
    for byte in data:
        x = w["embedding"][byte]
        m = (x @ w["wmx"]) * (h @ w["wmh"])
        i, f, o, u = np.split(x @ w["wx"] + m @ w["wh"] + w["b"], 4)
        c = sigmoid(f) * c + sigmoid(i) * np.tanh(u)
        h = sigmoid(o) * np.tanh(c)
    return c, h @ w["w"] + w["wb"]


def last_logits(model, data):
    with torch.no_grad():
        logits, _ = model(torch.tensor([list(data)]))
    return logits[0, -1].double().numpy()


def assert_matches_reference(model, reference, texts=TEXTS, check_logits=True):
    features = model.featurize(texts, batch_size=2)  # bytes are fed as they are, padded in a batch
    for row, data in enumerate(texts):
        cell, logits = reference(data)
        np.testing.assert_allclose(features[row], cell, atol=1e-5, rtol=0)
        if check_logits:
            np.testing.assert_allclose(last_logits(model, data), logits, atol=1e-5, rtol=1e-5)


def test_openai_release_matches_reference_forward(tmp_path):
    params = openai_params()
    folder = write_release(tmp_path / "model", params)
    import_weights(folder, tmp_path / "imported")
    model = load_model(tmp_path / "imported")
    config = model.config
    assert (config.rnn_type, config.rnn_size, config.embed_size, config.layers) == ("mlstm", H, E, 1)
    assert config.weight_norm and config.lstm_only
    assert model.text_options == OPENAI_TEXT_OPTIONS  # the release's own padding and cleaning, "\r" kept
    assert model.metadata == {"source": "openai", "layout": "release", "imported_from": str(folder.resolve())}
    # Weight norm is kept as published: direction and gains unchanged.
    assert torch.equal(model.layers[0].wh[:, H : 2 * H], torch.from_numpy(params[3]))
    assert torch.equal(model.layers[0].wx_g, torch.from_numpy(params[9]))
    assert_matches_reference(model, lambda data: openai_reference(params, data))


def test_openai_text_is_preprocessed_as_the_release_did(tmp_path):
    params = openai_params(seed=1)
    model = load_openai_weights(write_release(tmp_path / "model", params))
    text = "Great &amp; fun\nmovie  "
    cell, _ = openai_reference(params, b"\n Great & fun movie ")
    np.testing.assert_allclose(model.featurize([text])[0], cell, atol=1e-5, rtol=0)


def test_openai_release_found_under_repository_folder_and_sentiment_unit(tmp_path, monkeypatch):
    write_release(tmp_path / "repo" / "model", openai_params())
    monkeypatch.setattr(importers, "OPENAI_SENTIMENT_UNIT", 5)  # the real 2388 needs H > 2388
    model = load_openai_weights(tmp_path / "repo")
    assert model.metadata["sentiment_unit"] == 5


def write_port_export(folder, w, transposed=False, **replace):
    """The port's NumPy export of the release: weight norm folded in, matrices [in, out]."""
    export = dict(embd=w["embedding"], wx=w["wx"], wh=w["wh"], b0=w["b"], wmx=w["wmx"], wmh=w["wmh"])
    export.update(w=w["w"], b=w["wb"])
    export.update(replace)
    folder.mkdir(exist_ok=True)
    for name, array in export.items():
        if transposed and array.ndim == 2 and name != "embd":
            array = array.T
        np.save(folder / f"{name}.npy", array.astype(np.float32))


@pytest.mark.parametrize("transposed", [False, True])
def test_port_numpy_export_matches_reference(tmp_path, transposed):
    params = openai_params(seed=2)
    write_port_export(tmp_path / "weights", openai_effective(params), transposed)
    model = load_openai_weights(tmp_path / "weights")
    assert not model.config.weight_norm and model.metadata["layout"] == "port-export"
    assert_matches_reference(model, lambda data: openai_reference(params, data))


def test_port_export_wrong_shape_names_the_file(tmp_path):
    w = openai_effective(openai_params())
    write_port_export(tmp_path, w, wmh=w["wmh"][:, :-1])
    with pytest.raises(UserError) as error:
        load_openai_weights(tmp_path)
    assert str(error.value) == (
        f"{tmp_path / 'wmh.npy'} has shape [{H}, {H - 1}], expected [H, H] = [{H}, {H}] "
        f"(E={E} from embd.npy, H={H} from b0.npy)"
    )


def test_openai_missing_file(tmp_path):
    folder = write_release(tmp_path / "model", openai_params())
    (folder / "7.npy").unlink()
    (folder / "12.npy").unlink()
    with pytest.raises(UserError) as error:
        load_openai_weights(folder)
    assert str(error.value) == f"{folder} is missing 7.npy, 12.npy; OpenAI's release holds 0.npy ... 14.npy"


def test_openai_wrong_shape_names_the_file(tmp_path):
    params = openai_params()
    params[1] = np.zeros((E, 4 * H + 1), np.float32)
    folder = write_release(tmp_path / "model", params)
    with pytest.raises(UserError) as error:
        load_openai_weights(folder)
    assert str(error.value) == (
        f"{folder / '1.npy'} (wx) has shape [{E}, {4 * H + 1}], expected [E, 4H] = [{E}, {4 * H}] "
        f"(E={E} from 0.npy, H={H} from 7.npy)"
    )


def test_openai_inconsistent_hidden_size(tmp_path):
    params = openai_params()
    params[11] = np.ones(H + 2, np.float32)  # gmx of another model size
    folder = write_release(tmp_path / "model", params)
    with pytest.raises(UserError, match=r"11\.npy \(gmx\) has shape \[14\], expected \[H\] = \[12\]"):
        load_openai_weights(folder)


def test_openai_non_square_wmh(tmp_path):
    params = openai_params()
    params[7] = np.zeros((H, H + 1), np.float32)
    folder = write_release(tmp_path / "model", params)
    with pytest.raises(UserError, match=r"7\.npy \(wmh\) has shape \[12, 13\], expected a square \[H, H\]"):
        load_openai_weights(folder)


def test_openai_truncated_npy(tmp_path):
    folder = write_release(tmp_path / "model", openai_params())
    data = (folder / "2.npy").read_bytes()
    (folder / "2.npy").write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match=r"2\.npy \(wh input-gate block\) is truncated or not a \.npy array"):
        load_openai_weights(folder)


def test_openai_not_a_release(tmp_path):
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("x")
    with pytest.raises(UserError) as error:
        load_openai_weights(tmp_path / "other")
    assert str(error.value) == (
        f"{tmp_path / 'other'} holds neither OpenAI's release (0.npy ... 14.npy) "
        "nor the port's NumPy export (embd.npy, wx.npy, ...)"
    )
    with pytest.raises(UserError, match="does not exist"):
        load_openai_weights(tmp_path / "nowhere")


# --------------------------------------------------------------------------- PyTorch, shared


def put_weight(state, rng, key, shape, normed):
    if normed:  # weight norm's reparameterisation: gain [out, 1] and direction [out, in]
        state[f"{key}_g"] = torch.from_numpy(rng.uniform(0.5, 1.5, (shape[0], 1)).astype(np.float32))
        state[f"{key}_v"] = torch.from_numpy(rng.normal(0, 1, shape).astype(np.float32))
    else:
        state[key] = torch.from_numpy(rng.normal(0, 0.4, shape).astype(np.float32))


def randn(rng, *shape):
    return torch.from_numpy(rng.normal(0, 0.5, shape).astype(np.float32))


def saved_weight(state, key):
    """The weight a reproduction used, in float64: plain, or v * g / ||v|| per output row."""
    if key in state:
        return state[key].double().numpy()
    v, g = state[f"{key}_v"].double().numpy(), state[f"{key}_g"].double().numpy().reshape(-1, 1)
    return v * g / np.linalg.norm(v, axis=1, keepdims=True)


# --------------------------------------------------------------------------- first release


def first_release_state(rnn_type="mlstm", layers=2, normed=(False, False), norm_output=False, seed=0):
    """A flat state dict exactly as the first release saved it; ``normed[i]``: weight norm on layer i."""
    rng = np.random.default_rng(seed)
    state = {"embedder.weight": randn(rng, 256, E)}
    for i in range(layers):
        inputs, p = (E if i == 0 else H), f"rnn.layers.{i}."
        if rnn_type == "mlstm":
            shapes = {"wx": (4 * H, inputs), "wh": (4 * H, H), "wmx": (H, inputs), "wmh": (H, H)}
            for name, shape in shapes.items():
                put_weight(state, rng, f"{p}{name}.weight", shape, normed[i])
            state[f"{p}wh.bias"] = randn(rng, 4 * H)
        else:  # torch.nn.LSTMCell
            put_weight(state, rng, f"{p}weight_ih", (4 * H, inputs), normed[i])
            put_weight(state, rng, f"{p}weight_hh", (4 * H, H), normed[i])
            state[f"{p}bias_ih"], state[f"{p}bias_hh"] = randn(rng, 4 * H), randn(rng, 4 * H)
    put_weight(state, rng, "rnn.h2o.weight", (256, H), norm_output)
    state["rnn.h2o.bias"] = randn(rng, 256)
    return state


def first_release_reference(state, rnn_type, layers, data, fused=False, recurrent_bias=True):
    """The first release's StackedLSTM: layer 0 feeds layer 1, then x = x + h_i; h2o reads x.

    ``fused``: the mLSTM ran through PyTorch's fused LSTMCell (-fuse_lstm), gates i, f, g, o;
    ``recurrent_bias=False``: as on CUDA, whose fused kernel never added wh's bias."""
    W = lambda key: saved_weight(state, key)  # noqa: E731
    hidden, cell = [np.zeros(H)] * layers, [np.zeros(H)] * layers
    for byte in data:
        x = state["embedder.weight"][byte].double().numpy()
        for i in range(layers):
            p, h, c = f"rnn.layers.{i}.", hidden[i], cell[i]
            if rnn_type == "mlstm":
                m = (W(f"{p}wmx.weight") @ x) * (W(f"{p}wmh.weight") @ h)
                gates = W(f"{p}wx.weight") @ x + W(f"{p}wh.weight") @ m
                if recurrent_bias:
                    gates = gates + state[f"{p}wh.bias"].double().numpy()
                if fused:
                    gi, gf, gu, go = np.split(gates, 4)
                else:
                    gi, gf, go, gu = np.split(gates, 4)
            else:
                gates = W(f"{p}weight_ih") @ x + W(f"{p}weight_hh") @ h
                gates = gates + state[f"{p}bias_ih"].double().numpy() + state[f"{p}bias_hh"].double().numpy()
                gi, gf, gu, go = np.split(gates, 4)
            c = sigmoid(gf) * c + sigmoid(gi) * np.tanh(gu)
            h = sigmoid(go) * np.tanh(c)
            hidden[i], cell[i] = h, c
            x = h if i == 0 else x + h
    return cell[-1], W("rnn.h2o.weight") @ x + state["rnn.h2o.bias"].double().numpy()


FIRST_RELEASE_CASES = {
    # name: (rnn_type, normed per layer, weight norm on h2o, expected weight_norm, expected lstm_only)
    "mlstm": ("mlstm", (False, False), False, False, False),
    "mlstm-weight-norm": ("mlstm", (True, True), False, True, True),
    "mlstm-weight-norm-output": ("mlstm", (True, True), True, True, False),
    "mlstm-mixed-norm-folded": ("mlstm", (True, False), True, False, False),
    "lstm": ("lstm", (False, False), False, False, False),
    "lstm-weight-norm": ("lstm", (True, True), False, True, True),
}


@pytest.mark.parametrize("case", FIRST_RELEASE_CASES)
def test_first_release_matches_reference(tmp_path, case):
    rnn_type, normed, norm_output, weight_norm, lstm_only = FIRST_RELEASE_CASES[case]
    state = first_release_state(rnn_type, 2, normed, norm_output)
    path = tmp_path / "e0.pt"
    torch.save(state, path)
    model = load_pytorch_checkpoint(path)
    config = model.config
    assert (config.rnn_type, config.layers, config.rnn_size, config.embed_size) == (rnn_type, 2, H, E)
    assert (config.weight_norm, config.lstm_only) == (weight_norm, lstm_only)
    gates = {"gate_layout": "unfused", "gate_layout_from": "unrecorded"} if rnn_type == "mlstm" else {}
    assert model.metadata == {
        "source": "pytorch-2017", "layout": "first-release", "imported_from": str(path.resolve()), **gates
    }
    assert_matches_reference(model, lambda data: first_release_reference(state, rnn_type, 2, data))


@pytest.mark.parametrize("layout", ["fused", "fused-cuda"])
def test_first_release_fused_gate_layouts(tmp_path, layout):
    """-fuse_lstm's PyTorch LSTMCell orders the gates i, f, g, o; on CUDA it dropped wh's bias."""
    state = first_release_state("mlstm", 2, (True, True), seed=5)
    path = tmp_path / "e0.pt"
    torch.save(state, path)
    model = load_pytorch_checkpoint(path, gate_layout=layout)
    assert model.metadata["gate_layout"] == layout
    bias = layout == "fused"
    assert_matches_reference(
        model, lambda data: first_release_reference(state, "mlstm", 2, data, fused=True, recurrent_bias=bias)
    )
    # The unfused reading of the same weights is a different model.
    other = load_pytorch_checkpoint(path, gate_layout="unfused")
    assert not torch.equal(other.layers[0].wx, model.layers[0].wx)


def test_first_release_saved_fuse_flag_chooses_the_layout(tmp_path):
    state = first_release_state("mlstm", 1, seed=6)
    path = tmp_path / "e0.pt"
    torch.save({"state_dict": state, "opt": argparse.Namespace(fuse_lstm=True, rnn_size=H)}, path)
    model = load_pytorch_checkpoint(path)
    assert (model.metadata["gate_layout"], model.metadata["gate_layout_from"]) == ("fused-cuda", "the saved -fuse_lstm flag")
    assert_matches_reference(
        model, lambda data: first_release_reference(state, "mlstm", 1, data, fused=True, recurrent_bias=False)
    )
    with pytest.raises(UserError, match="gate layout 'sideways' is not one of auto, unfused"):
        load_pytorch_checkpoint(path, gate_layout="sideways")


def test_first_release_full_checkpoint_legacy_format_with_module_prefix(tmp_path):
    """The dict the first release saved (flags as an argparse.Namespace), DataParallel keys, pre-1.6 format."""
    state = first_release_state("mlstm", 2, seed=3)
    checkpoint = {
        "state_dict": {f"module.{k}": v for k, v in state.items()},
        "opt": argparse.Namespace(rnn_size=H, embed_size=E, lr=0.000125, train="data/amazon/reviews.json"),
        "epoch": 1,
        "histories": [[4.1, 3.2, 2.7]],
    }
    path = tmp_path / "e1.pt"
    torch.save(checkpoint, path, _use_new_zipfile_serialization=False)
    import_weights(path, tmp_path / "imported")
    model = load_model(tmp_path / "imported")
    assert model.text_options == importers.PYTORCH_TEXT_OPTIONS
    assert_matches_reference(model, lambda data: first_release_reference(state, "mlstm", 2, data))


# --------------------------------------------------------------------------- later release


def later_release_checkpoint(rnn_type="mlstm", normed=False, decoder=True, layers=1, seed=0):
    """The later release's nested dict: encoder.{encoder, rnn}, decoder; gates i, f, g, o."""
    rng = np.random.default_rng(seed)
    rnn = {}
    for i in range(layers):
        p, inputs = f"rnns.{i}.", (E if i == 0 else H)
        put_weight(rnn, rng, f"{p}w_ih", (4 * H, inputs), normed)
        put_weight(rnn, rng, f"{p}w_hh", (4 * H, H), normed)
        if rnn_type == "mlstm":
            put_weight(rnn, rng, f"{p}w_mih", (H, inputs), normed)
            put_weight(rnn, rng, f"{p}w_mhh", (H, H), normed)
        rnn[f"{p}b_ih"], rnn[f"{p}b_hh"] = randn(rng, 4 * H), randn(rng, 4 * H)
    checkpoint = {"encoder": {"encoder": {"weight": randn(rng, 256, E)}, "rnn": rnn}}
    if decoder:
        checkpoint["decoder"] = {"weight": randn(rng, 256, H), "bias": randn(rng, 256)}
    return checkpoint


def later_release_reference(checkpoint, rnn_type, data):
    """The later release's cell: m = (x w_mih^T) * (h w_mhh^T); gates in PyTorch's i, f, g, o order."""
    rnn = checkpoint["encoder"]["rnn"]
    W = lambda key: saved_weight(rnn, key)  # noqa: E731
    bias = rnn["rnns.0.b_ih"].double().numpy() + rnn["rnns.0.b_hh"].double().numpy()
    h = c = np.zeros(H)
    for byte in data:
        x = checkpoint["encoder"]["encoder"]["weight"][byte].double().numpy()
        recurrent = (W("rnns.0.w_mih") @ x) * (W("rnns.0.w_mhh") @ h) if rnn_type == "mlstm" else h
        gi, gf, gg, go = np.split(W("rnns.0.w_ih") @ x + W("rnns.0.w_hh") @ recurrent + bias, 4)
        c = sigmoid(gf) * c + sigmoid(gi) * np.tanh(gg)
        h = sigmoid(go) * np.tanh(c)
    logits = None
    if "decoder" in checkpoint:
        logits = checkpoint["decoder"]["weight"].double().numpy() @ h + checkpoint["decoder"]["bias"].double().numpy()
    return c, logits


@pytest.mark.parametrize("rnn_type,normed", [("mlstm", False), ("mlstm", True), ("lstm", False)])
def test_later_release_matches_reference(tmp_path, rnn_type, normed):
    checkpoint = later_release_checkpoint(rnn_type, normed)
    path = tmp_path / "mlstm.pt"
    torch.save(checkpoint, path)
    model = load_pytorch_checkpoint(path)
    assert (model.config.rnn_type, model.config.layers, model.config.weight_norm) == (rnn_type, 1, normed)
    assert model.metadata["layout"] == "later-release"
    assert_matches_reference(model, lambda data: later_release_reference(checkpoint, rnn_type, data))


def test_later_release_featurizer_without_decoder(tmp_path):
    checkpoint = later_release_checkpoint(decoder=False, seed=4)
    featurizer = {"encoder": checkpoint["encoder"]["encoder"], "rnn": checkpoint["encoder"]["rnn"]}
    torch.save(featurizer, tmp_path / "featurizer.pt")
    model = load_pytorch_checkpoint(tmp_path / "featurizer.pt")
    assert model.metadata["output_layer"] == "absent from the source; set to zero"
    assert not model.output.weight.any() and not model.output.bias.any()
    reference = lambda data: later_release_reference(checkpoint, "mlstm", data)  # noqa: E731
    assert_matches_reference(model, reference, check_logits=False)


def test_later_release_with_two_layers_is_refused(tmp_path):
    torch.save(later_release_checkpoint(layers=2), tmp_path / "deep.pt")
    with pytest.raises(UserError) as error:
        load_pytorch_checkpoint(tmp_path / "deep.pt")
    assert str(error.value) == (
        f"{tmp_path / 'deep.pt'} has 2 layers; the later release stacks layers without the running sum "
        "(x = x + h) this model uses, so only its single-layer checkpoints can be imported"
    )


# --------------------------------------------------------------------------- PyTorch errors


def test_unknown_layout_lists_keys(tmp_path):
    torch.save({"features.0.weight": torch.zeros(2, 2), "classifier.bias": torch.zeros(2)}, tmp_path / "x.pt")
    with pytest.raises(UserError) as error:
        load_pytorch_checkpoint(tmp_path / "x.pt")
    assert str(error.value) == (
        f"{tmp_path / 'x.pt'} is not a checkpoint of the 2017 PyTorch reproduction "
        "(found classifier.bias, features.0.weight); expected embedder.weight and rnn.layers.<i>.* "
        "(first release) or encoder.encoder.weight and encoder.rnn.rnns.<i>.* (later release)"
    )


def test_unexpected_tensor_is_an_error(tmp_path):
    state = first_release_state("mlstm", 1)
    state["rnn.layers.0.wx.bias"] = torch.zeros(4 * H)
    torch.save(state, tmp_path / "e0.pt")
    with pytest.raises(UserError) as error:
        load_pytorch_checkpoint(tmp_path / "e0.pt")
    expected = f"{tmp_path / 'e0.pt'} has tensors this importer does not understand: rnn.layers.0.wx.bias"
    assert str(error.value) == expected


def test_missing_tensor_is_named(tmp_path):
    state = first_release_state("mlstm", 1)
    del state["rnn.layers.0.wmh.weight"]
    torch.save(state, tmp_path / "e0.pt")
    with pytest.raises(UserError, match=r"has no tensor rnn\.layers\.0\.wmh\.weight \(nor \S+_g and \S+_v\) \(found "):
        load_pytorch_checkpoint(tmp_path / "e0.pt")


def test_wrong_shape_is_named(tmp_path):
    state = first_release_state("mlstm", 2)
    state["rnn.layers.1.wmx.weight"] = torch.zeros(H, E)  # layer 1 reads H, not E, inputs
    torch.save(state, tmp_path / "e0.pt")
    with pytest.raises(UserError) as error:
        load_pytorch_checkpoint(tmp_path / "e0.pt")
    assert str(error.value) == (
        f"{tmp_path / 'e0.pt'}: rnn.layers.1.wmx.weight has shape [{H}, {E}], expected [{H}, {H}] "
        f"(E={E} from the embedding, H={H} from rnn.layers.0.wh.weight)"
    )


class PickledPort(nn.Module):
    """Stands in for the third-party port, which saves whole modules."""

    def __init__(self):
        super().__init__()
        self.h2o = nn.Linear(H, 256)


def test_pickled_modules_are_refused(tmp_path):
    torch.save({"rnn": PickledPort(), "embed": nn.Embedding(256, E), "epoch": 0}, tmp_path / "mlstm_ns.pt")
    with pytest.raises(UserError) as error:
        load_pytorch_checkpoint(tmp_path / "mlstm_ns.pt")
    message = str(error.value)
    assert message.startswith(f"{tmp_path / 'mlstm_ns.pt'} pickles Python objects (")
    assert "PickledPort" in message or "torch.nn.modules" in message
    assert "so it is refused" in message and "\n" not in message


@pytest.mark.parametrize("legacy", [False, True])
def test_truncated_checkpoint(tmp_path, legacy):
    path = tmp_path / "e0.pt"
    torch.save(first_release_state("mlstm", 1), path, _use_new_zipfile_serialization=not legacy)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError) as error:
        load_pytorch_checkpoint(path)
    assert str(error.value).startswith(f"{path} is truncated or not a PyTorch checkpoint (")
    assert "\n" not in str(error.value)


def test_missing_checkpoint_and_folder(tmp_path):
    with pytest.raises(UserError, match="nope.pt does not exist"):
        load_pytorch_checkpoint(tmp_path / "nope.pt")
    with pytest.raises(UserError, match="is a folder; import-pytorch takes a .pt checkpoint file"):
        load_pytorch_checkpoint(tmp_path)


# --------------------------------------------------------------------------- command line


def test_cli_import_then_load(tmp_path, capsys):
    params = openai_params()
    folder = write_release(tmp_path / "model", params)
    dest = tmp_path / "openai"
    assert cli.main(["import-openai", str(folder), str(dest)]) == 0
    assert "imported openai release from" in capsys.readouterr().err
    config = json.loads((dest / "config.json").read_text())
    assert config["metadata"]["source"] == "openai" and config["model"]["rnn_size"] == H
    assert_matches_reference(load_model(dest), lambda data: openai_reference(params, data), check_logits=False)

    assert cli.main(["import-openai", str(folder), str(dest)]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"error: {dest} already exists; choose another DEST or pass --overwrite to replace it"
    ]
    torch.save(first_release_state("lstm", 1), tmp_path / "e0.pt")
    assert cli.main(["import-pytorch", str(tmp_path / "e0.pt"), str(dest), "--overwrite"]) == 0
    assert load_model(dest).config.rnn_type == "lstm"


def test_cli_error_is_one_line(tmp_path, capsys):
    assert cli.main(["import-pytorch", str(tmp_path / "missing.pt"), str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [f"error: {tmp_path / 'missing.pt'} does not exist"]
    assert not (tmp_path / "out").exists()
