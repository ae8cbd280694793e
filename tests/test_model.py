import numpy as np
import pytest
import torch

from sentiment_discovery import CellOverwrite, ModelConfig, UserError
from sentiment_discovery.model import mlstm_cell_step

from conftest import make_model


def manual_mlstm(layer, inputs, hidden, cell):
    """The published cell written out step by step, weight norm by hand, float64."""
    def wn(w, g):
        return w if g is None else w / torch.sqrt((w**2).sum(0).clamp_min(1e-12)) * g
    g = (lambda n: getattr(layer, n + "_g")) if layer.weight_norm else (lambda n: None)
    wx, wh, wmx, wmh = (wn(getattr(layer, n), g(n)) for n in ("wx", "wh", "wmx", "wmh"))
    cells = []
    for t in range(inputs.shape[1]):
        x = inputs[:, t]
        m = (x @ wmx) * (hidden @ wmh)
        z = x @ wx + m @ wh + layer.b
        h4 = z.shape[1] // 4
        i, f, o, u = z[:, :h4], z[:, h4 : 2 * h4], z[:, 2 * h4 : 3 * h4], z[:, 3 * h4 :]
        cell = torch.sigmoid(f) * cell + torch.sigmoid(i) * torch.tanh(u)
        hidden = torch.sigmoid(o) * torch.tanh(cell)
        cells.append(cell)
    return hidden, cell, torch.stack(cells, 1)


@pytest.mark.parametrize("weight_norm", [False, True])
@pytest.mark.parametrize("implementation", ["reference", "loop"])
def test_mlstm_layer_matches_manual_cell(weight_norm, implementation):
    model = make_model(weight_norm=weight_norm, lstm_only=True).double()
    model.set_implementation(implementation)
    layer = model.layers[0]
    inputs = torch.randn(3, 7, 8, dtype=torch.float64)
    h0, c0 = torch.randn(3, 16, dtype=torch.float64), torch.randn(3, 16, dtype=torch.float64)
    out = layer(inputs, h0, c0, return_cell_sequence=True)
    h, c, cells = manual_mlstm(layer, inputs, h0, c0)
    torch.testing.assert_close(out.final_hidden, h)
    torch.testing.assert_close(out.final_cell, c)
    torch.testing.assert_close(out.cell_sequence, cells)


@pytest.mark.parametrize("implementation", ["reference", "loop"])
def test_mlstm_gradcheck_float64(implementation):
    model = make_model(embed_size=3, rnn_size=4, weight_norm=True).double()
    model.set_implementation(implementation)
    layer = model.layers[0]
    inputs = torch.randn(2, 4, 3, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(2, 4, dtype=torch.float64, requires_grad=True)
    c0 = torch.randn(2, 4, dtype=torch.float64, requires_grad=True)
    params = [layer.wx, layer.wh, layer.wmx, layer.wmh, layer.b, layer.wx_g, layer.wmh_g]

    def run(x, h, c, *weights):
        out = layer(x, h, c)
        return out.hidden, out.final_cell

    assert torch.autograd.gradcheck(run, (inputs, h0, c0, *params))


def test_loop_and_reference_gradients_agree():
    model = make_model(rnn_size=32, weight_norm=True)
    tokens = torch.randint(0, 256, (4, 20))
    grads = {}
    for implementation in ("reference", "loop"):
        model.zero_grad()
        model.set_implementation(implementation)
        logits, _ = model(tokens)
        logits.square().mean().backward()
        grads[implementation] = {n: p.grad.clone() for n, p in model.named_parameters()}
    for name in grads["loop"]:
        torch.testing.assert_close(grads["loop"][name], grads["reference"][name], rtol=1e-4, atol=1e-6)


def test_state_carried_across_calls_equals_one_call(small_model):
    tokens = torch.randint(0, 256, (2, 12))
    whole, state_whole = small_model(tokens)
    first, state = small_model(tokens[:, :5])
    second, state = small_model(tokens[:, 5:], state)
    torch.testing.assert_close(torch.cat([first, second], 1), whole)
    torch.testing.assert_close(state.cell[0], state_whole.cell[0])


def test_reset_mask_equals_fresh_state(small_model):
    tokens = torch.randint(0, 256, (2, 10))
    reset = torch.zeros(2, 10, dtype=torch.bool)
    reset[0, 4] = True
    _, state = small_model(tokens, reset=reset)
    _, fresh = small_model(tokens[:1, 4:])
    torch.testing.assert_close(state.cell[0][0], fresh.cell[0][0])


@pytest.mark.parametrize("rnn_type", ["mlstm", "lstm"])
def test_cell_overwrite_holds_unit(rnn_type):
    model = make_model(rnn_type=rnn_type, layers=2)
    tokens = torch.randint(0, 256, (2, 6))
    out = model.encode(tokens, return_cell_sequences=True, overwrite=CellOverwrite(layer=1, unit=3, value=0.75))
    assert torch.all(out.cell_sequences[1][:, :, 3] == 0.75)
    assert not torch.all(out.cell_sequences[0][:, :, 3] == 0.75)
    free = model.encode(tokens)
    assert not torch.allclose(free.hidden, out.hidden)


def test_lstm_loop_matches_torch_lstm():
    model = make_model(rnn_type="lstm", layers=2)
    tokens = torch.randint(0, 256, (3, 9))
    fast = model.encode(tokens)
    looped = model.encode(tokens, reset=torch.zeros(3, 9, dtype=torch.bool))
    torch.testing.assert_close(fast.hidden, looped.hidden)
    torch.testing.assert_close(fast.state.cell[1], looped.state.cell[1])


def test_state_api(small_model):
    state = small_model.init_state(3)
    state.set_unit(0, 2, 1.5)
    assert state.cell[0][:, 2].tolist() == [1.5, 1.5, 1.5]
    cleared = state.reset_rows(torch.tensor([True, False, True]))
    assert cleared.cell[0][:, 2].tolist() == [0.0, 1.5, 0.0]


def test_mlstm_cell_step_gate_order():
    x = torch.zeros(1, 2)
    h = torch.zeros(1, 1)
    c = torch.tensor([[0.5]])
    from sentiment_discovery.model import MLSTMWeights
    # z = b: i=+inf-ish, f=-inf-ish, o=0, u=big -> c' ~ tanh(u), h' = 0.5 * tanh(c')
    b = torch.tensor([20.0, -20.0, 0.0, 3.0])
    w = MLSTMWeights(torch.zeros(2, 4), torch.zeros(1, 4), torch.zeros(2, 1), torch.zeros(1, 1), b)
    h1, c1 = mlstm_cell_step(x, h, c, w)
    np.testing.assert_allclose(c1.item(), np.tanh(3.0), rtol=1e-6)
    np.testing.assert_allclose(h1.item(), 0.5 * np.tanh(np.tanh(3.0)), rtol=1e-6)


def test_bad_config_is_user_error():
    with pytest.raises(UserError, match="rnn_type must be one of mlstm, lstm"):
        ModelConfig(rnn_type="gru")
    with pytest.raises(UserError, match="dropout must be in"):
        ModelConfig(dropout=1.0)
