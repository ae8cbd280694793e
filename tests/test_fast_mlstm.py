import json

import numpy as np
import pytest
import torch

from sentiment_discovery import CellOverwrite, UserError, cli, fast_mlstm
from sentiment_discovery.fast_mlstm import ByteInput, byte_input_tables, mlstm_sequence

from conftest import make_model


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny tensors gain nothing from threads, and lose much on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def random_state(batch, size, dtype=torch.float32, requires_grad=False):
    return [torch.randn(batch, size, dtype=dtype, requires_grad=requires_grad) for _ in range(2)]


def layer_weights(layer):
    weights = layer.effective_weights()
    return weights.wx, weights.wmx, weights.b, weights.wh, weights.wmh


def gradients(model, implementation, tokens, state=None, reset=None, overwrite=None, precision="fp32"):
    """Outputs and parameter gradients of a loss that reads every output the layers give."""
    model.zero_grad()
    model.set_implementation(implementation)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
        out = model.encode(tokens, state, reset, return_cell_sequences=True, overwrite=overwrite)
        logits = model.decode(out.hidden)
    loss = torch.nn.functional.cross_entropy(logits.float().reshape(-1, 256), tokens.reshape(-1))
    loss = loss + sum(c.float().square().mean() for c in out.cell_sequences) + out.state.hidden[-1].float().sum()
    loss.backward()
    return out, {name: p.grad.clone() for name, p in model.named_parameters()}


def relative_error(actual, expected):
    return ((actual.float() - expected.float()).norm() / expected.float().norm()).item()


@pytest.mark.parametrize("weight_norm", [False, True])
def test_fast_equals_reference_float64(weight_norm):
    model = make_model(embed_size=5, rnn_size=6, layers=2, weight_norm=weight_norm).double()
    # 3 x 90 bytes: more than the 256 rows of the per-byte tables, so layer 0 uses them.
    tokens = torch.randint(0, 256, (3, 90))
    reset = torch.zeros(3, 90, dtype=torch.bool)
    reset[1, 40] = reset[2, 0] = True
    state = model.init_state(3)
    state.hidden = [torch.randn(3, 6, dtype=torch.float64) for _ in range(2)]
    state.cell = [torch.randn(3, 6, dtype=torch.float64) for _ in range(2)]
    expected, expected_grads = gradients(model, "reference", tokens, state, reset)
    actual, actual_grads = gradients(model, "fast", tokens, state, reset)
    torch.testing.assert_close(actual.hidden, expected.hidden)
    for layer in range(2):
        torch.testing.assert_close(actual.cell_sequences[layer], expected.cell_sequences[layer])
        torch.testing.assert_close(actual.state.cell[layer], expected.state.cell[layer])
        torch.testing.assert_close(actual.state.hidden[layer], expected.state.hidden[layer])
    assert expected_grads.keys() == actual_grads.keys()
    for name in expected_grads:
        torch.testing.assert_close(actual_grads[name], expected_grads[name], msg=name)


@pytest.mark.parametrize("byte_input", [False, True])
def test_gradcheck_float64_with_reset_and_held_unit(byte_input):
    torch.manual_seed(0)
    size, batch, steps, vocabulary = 3, 2, 4, 5
    tokens = torch.randint(0, vocabulary, (batch, steps))
    if byte_input:  # per-byte tables of a 5-byte vocabulary, indexed by the tokens
        source_shapes, source = ((vocabulary, 4 * size), (vocabulary, size)), tokens
    else:
        source_shapes, source = ((2, 4 * size), (2, size)), torch.randn(batch, steps, 2, dtype=torch.float64)
        source.requires_grad_()
    shapes = (*source_shapes, (4 * size,), (size, 4 * size), (size, size), (batch, size), (batch, size))
    tensors = [torch.randn(shape, dtype=torch.float64, requires_grad=True) for shape in shapes]
    reset = torch.tensor([[False, False, True, False], [False, False, False, False]])

    def run(source, w_gates, w_mult, b, wh, wmh, h0, c0):
        out = mlstm_sequence(source, w_gates, w_mult, b, wh, wmh, h0, c0, reset, True, hold=(1, 0.5))
        return out.hidden, out.final_hidden, out.final_cell, out.cell_sequence

    assert torch.autograd.gradcheck(run, (source, *tensors))


def test_fast_equals_reference_on_a_realistic_size_fp32():
    model = make_model(embed_size=64, rnn_size=128, layers=2, weight_norm=True)
    tokens = torch.randint(0, 256, (8, 48))
    reset = torch.zeros(8, 48, dtype=torch.bool)
    reset[::3, 20] = True
    expected, expected_grads = gradients(model, "reference", tokens, reset=reset)
    actual, actual_grads = gradients(model, "fast", tokens, reset=reset)
    torch.testing.assert_close(actual.hidden, expected.hidden, rtol=1e-5, atol=1e-5)
    for name in expected_grads:
        torch.testing.assert_close(actual_grads[name], expected_grads[name], rtol=1e-4, atol=1e-5, msg=name)


def test_bf16_is_as_close_to_fp32_as_the_reference_under_autocast():
    """bf16 products: gradients within 3% of fp32, and no further off than the plain cell's under autocast."""
    model = make_model(embed_size=64, rnn_size=128, layers=2, weight_norm=True)
    tokens = torch.randint(0, 256, (8, 48))
    exact, exact_grads = gradients(model, "reference", tokens)
    plain_bf16, plain_grads = gradients(model, "reference", tokens, precision="bf16")
    fast_bf16, fast_grads = gradients(model, "fast", tokens, precision="bf16")
    assert fast_bf16.state.cell[1].dtype == torch.float32
    assert relative_error(fast_bf16.hidden, exact.hidden) < 0.01
    for name in exact_grads:
        fast_error = relative_error(fast_grads[name], exact_grads[name])
        plain_error = relative_error(plain_grads[name], exact_grads[name])
        assert fast_error < 0.03, (name, fast_error)
        assert fast_error < 2 * plain_error + 1e-3, (name, fast_error, plain_error)


@pytest.mark.parametrize("grad", [False, True])
def test_state_carried_across_calls_equals_one_call(grad):
    # 75 steps cross the blocks that the inference path makes its input products in.
    model = make_model(rnn_size=16, layers=2)
    tokens = torch.randint(0, 256, (3, 75))
    with torch.set_grad_enabled(grad):
        whole, whole_state = model(tokens)
        first, state = model(tokens[:, :40])
        second, state = model(tokens[:, 40:], state)
    torch.testing.assert_close(torch.cat([first, second], 1), whole)
    for layer in range(2):
        torch.testing.assert_close(state.cell[layer], whole_state.cell[layer])
        torch.testing.assert_close(state.hidden[layer], whole_state.hidden[layer])


@pytest.mark.parametrize("grad", [False, True])
def test_reset_equals_a_fresh_state(grad):
    model = make_model(rnn_size=16, layers=2)
    tokens = torch.randint(0, 256, (2, 70))
    reset = torch.zeros(2, 70, dtype=torch.bool)
    reset[0, 37] = True
    with torch.set_grad_enabled(grad):
        _, state = model(tokens, reset=reset)
        _, fresh = model(tokens[:1, 37:])
    torch.testing.assert_close(state.cell[1][0], fresh.cell[1][0])
    assert not torch.allclose(state.cell[1][1], fresh.cell[1][0])


def test_held_unit_matches_loop_in_values_and_gradients():
    model = make_model(rnn_size=16, layers=2, weight_norm=True)
    tokens = torch.randint(0, 256, (3, 12))
    overwrite = CellOverwrite(layer=1, unit=5, value=-0.8)
    expected, expected_grads = gradients(model, "loop", tokens, overwrite=overwrite)
    actual, actual_grads = gradients(model, "fast", tokens, overwrite=overwrite)
    assert torch.all(actual.cell_sequences[1][:, :, 5] == -0.8)
    torch.testing.assert_close(actual.cell_sequences[1], expected.cell_sequences[1])
    for name in expected_grads:
        torch.testing.assert_close(actual_grads[name], expected_grads[name], rtol=1e-4, atol=1e-6, msg=name)


def test_inference_path_equals_training_path():
    model = make_model(rnn_size=16)
    layer = model.layers[0]
    inputs = torch.randn(4, 50, 8)
    h0, c0 = random_state(4, 16)
    with torch.no_grad():
        inferred = layer(inputs, h0, c0, return_cell_sequence=True)
        without_cells = layer(inputs, h0, c0)
    trained = layer(inputs, h0, c0, return_cell_sequence=True)
    assert trained.hidden.requires_grad and not inferred.hidden.requires_grad
    assert without_cells.cell_sequence is None
    for got, expected in zip(inferred, trained):
        torch.testing.assert_close(got, expected.detach())
    torch.testing.assert_close(without_cells.final_cell, trained.final_cell.detach())


def test_byte_tables_equal_the_embedded_input():
    model = make_model(rnn_size=16)
    tokens = torch.randint(0, 256, (3, 90))  # more bytes than table rows: the tables are used
    h0, c0 = random_state(3, 16)
    layer = model.layers[0]
    from_bytes = layer(ByteInput(tokens, model.embedding.weight), h0, c0)
    from_vectors = layer(model.embedding(tokens), h0, c0)
    torch.testing.assert_close(from_bytes.hidden, from_vectors.hidden)
    grads_bytes = torch.autograd.grad(from_bytes.hidden.sum(), [model.embedding.weight, layer.wx, layer.b])
    grads_vectors = torch.autograd.grad(from_vectors.hidden.sum(), [model.embedding.weight, layer.wx, layer.b])
    for got, expected in zip(grads_bytes, grads_vectors):
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_without_weight_packing_the_results_are_the_same(monkeypatch, precision):
    model = make_model(rnn_size=32, weight_norm=True)
    monkeypatch.setattr(fast_mlstm, "PACK_MIN_MACS", 0)  # pack even these small weights
    tokens = torch.randint(0, 256, (4, 2 * fast_mlstm.PACK_MIN_STEPS))
    packed, packed_grads = gradients(model, "fast", tokens, precision=precision)
    monkeypatch.setattr(fast_mlstm, "PACK_WEIGHTS", False)
    plain, plain_grads = gradients(model, "fast", tokens, precision=precision)
    # bf16 products round their results; the two kernels may sum in different orders.
    tolerance = dict(rtol=1e-4, atol=1e-6) if precision == "fp32" else dict(rtol=2e-2, atol=2e-3)
    torch.testing.assert_close(packed.hidden, plain.hidden, **tolerance)
    for name in plain_grads:
        torch.testing.assert_close(packed_grads[name], plain_grads[name], **tolerance, msg=name)


def test_empty_sequence_keeps_the_state():
    layer = make_model(rnn_size=16).layers[0]
    h0, c0 = random_state(2, 16)
    out = layer(torch.zeros(2, 0, 8), h0, c0, return_cell_sequence=True)
    assert out.hidden.shape == (2, 0, 16) and out.cell_sequence.shape == (2, 0, 16)
    assert torch.equal(out.final_hidden, h0) and torch.equal(out.final_cell, c0)


def test_backward_twice_through_a_retained_graph_gives_the_same_gradients():
    model = make_model(rnn_size=16)
    logits, _ = model(torch.randint(0, 256, (2, 5)))
    loss = logits.square().sum()
    loss.backward(retain_graph=True)
    first = model.layers[0].wh.grad.clone()
    loss.backward()
    torch.testing.assert_close(model.layers[0].wh.grad, 2 * first)


def test_fast_is_the_default():
    assert all(layer.implementation == "fast" for layer in make_model(layers=2).layers)


def test_featurize_in_bf16_returns_float32_close_to_fp32():
    model = make_model(rnn_size=32, layers=2, weight_norm=True)
    texts = ["a fine film", "dull, dull, dull and far too long " * 10]
    exact = model.featurize(texts)
    approximate = model.featurize(texts, precision="bf16")
    assert approximate.dtype == np.float32
    np.testing.assert_allclose(approximate, exact, atol=0.05)
    assert np.abs(approximate - exact).max() > 0  # the products really ran in bf16
    with pytest.raises(UserError, match="-precision must be one of auto, fp32, bf16, fp16, not 'fp8'"):
        model.featurize(texts, precision="fp8")


def test_benchmark_command_writes_its_report(tmp_path, capsys):
    out = tmp_path / "bench.json"
    args = ["--rnn_size", "16", "--batch_size", "2", "--seq_length", "8", "--repeats", "2", "--threads", "1"]
    status = cli.main(["benchmark", *args, "--baseline", "reference", "--system_allocator", "--json", str(out)])
    assert status == 0
    report = json.loads(out.read_text())
    assert report["train_chars_per_s"] == report["train"]["fast"]["chars_per_s"] > 0
    assert report["featurize_chars_per_s"] == report["featurize"]["fast"]["chars_per_s"] > 0
    assert len(report["train"]["reference"]["seconds"]) == 2
    expected_ratio = report["train_chars_per_s"] / report["train"]["reference"]["chars_per_s"]
    assert report["train"]["reference"]["speedup_of_measured"] == pytest.approx(expected_ratio)
    assert report["train"]["fast"]["memory"]["saved_for_backward_mib"] > 0
    printed = capsys.readouterr().out
    assert "train      fast" in printed and "featurize  reference" in printed


def test_benchmark_rejects_bad_sizes(capsys):
    assert cli.main(["benchmark", "--seq_length", "0"]) == 2
    assert capsys.readouterr().err.strip() == "error: --seq-length must be at least 1, not 0"
