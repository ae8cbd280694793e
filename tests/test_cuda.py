"""On a GPU: the fast recurrence against the plain cell, bf16 and fp16 autocast, featurize, a few
training steps and (with two GPUs) two NCCL processes. Skipped without CUDA; benchmarks/gpu_check.sh runs them."""

import pytest
import torch

from sentiment_discovery import precision, training
from sentiment_discovery.recipes import train

from conftest import make_model
from test_train import make_config, read_csv, weights

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device (benchmarks/gpu_check.sh)"),
]

CUDA = torch.device("cuda")


def outputs_and_gradients(model, implementation, tokens, reset=None, dtype=None):
    """Outputs and parameter gradients of a loss that reads every output, products in ``dtype`` (None: fp32)."""
    model.zero_grad()
    model.set_implementation(implementation)
    with torch.autocast("cuda", dtype=dtype or torch.bfloat16, enabled=dtype is not None):
        out = model.encode(tokens, None, reset, return_cell_sequences=True)
        logits = model.decode(out.hidden)
    loss = torch.nn.functional.cross_entropy(logits.float().reshape(-1, 256), tokens.reshape(-1))
    loss = loss + sum(c.float().square().mean() for c in out.cell_sequences) + out.state.hidden[-1].float().sum()
    loss.backward()
    return out, {name: p.grad.detach().clone() for name, p in model.named_parameters()}


def relative_error(actual, expected) -> float:
    return ((actual.float() - expected.float()).norm() / expected.float().norm()).item()


@pytest.mark.parametrize("weight_norm", [False, True])
def test_fast_equals_reference_on_cuda_forward_and_gradients(weight_norm):
    model = make_model(embed_size=16, rnn_size=64, layers=2, weight_norm=weight_norm).double().to(CUDA)
    tokens = torch.randint(0, 256, (4, 300), device=CUDA)  # more rows than the per-byte tables
    reset = torch.zeros(4, 300, dtype=torch.bool, device=CUDA)
    reset[1, 40] = reset[2, 0] = True
    expected, expected_grads = outputs_and_gradients(model, "reference", tokens, reset)
    actual, actual_grads = outputs_and_gradients(model, "fast", tokens, reset)
    torch.testing.assert_close(actual.hidden, expected.hidden)
    for name in expected_grads:
        torch.testing.assert_close(actual_grads[name], expected_grads[name], rtol=1e-6, atol=1e-8, msg=name)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
def test_low_precision_autocast_on_cuda_is_close_to_fp32(dtype):
    model = make_model(embed_size=64, rnn_size=256, layers=2, weight_norm=True).to(CUDA)
    tokens = torch.randint(0, 256, (16, 64), device=CUDA)
    exact, exact_grads = outputs_and_gradients(model, "reference", tokens)
    plain, plain_grads = outputs_and_gradients(model, "reference", tokens, dtype=dtype)
    fast, fast_grads = outputs_and_gradients(model, "fast", tokens, dtype=dtype)
    assert fast.state.cell[1].dtype == torch.float32
    assert relative_error(fast.hidden, exact.hidden) < 0.01
    for name in exact_grads:
        fast_error = relative_error(fast_grads[name], exact_grads[name])
        plain_error = relative_error(plain_grads[name], exact_grads[name])
        assert fast_error < 0.03, (name, fast_error)
        assert fast_error < 2 * plain_error + 1e-3, (name, fast_error, plain_error)


def test_featurize_on_cuda_matches_the_cpu_and_auto_follows_the_gpu():
    model = make_model(rnn_size=128, layers=2, weight_norm=True)
    texts = ["a fine film", "dull, dull, dull and far too long " * 20, "ok"]
    on_cpu = model.featurize(texts, precision="fp32", pooling="mean")
    model = model.to(CUDA)
    torch.testing.assert_close(
        torch.from_numpy(model.featurize(texts, precision="fp32", pooling="mean")), torch.from_numpy(on_cpu),
        rtol=1e-4, atol=1e-5,
    )
    for name in ("bf16", "fp16"):
        approximate = model.featurize(texts, precision=name, pooling="mean")
        torch.testing.assert_close(torch.from_numpy(approximate), torch.from_numpy(on_cpu), rtol=0, atol=0.05)
    native_bf16 = torch.cuda.is_bf16_supported(including_emulation=False)
    assert precision.resolve_precision("auto", CUDA) == ("bf16" if native_bf16 else "fp32")


@pytest.mark.parametrize("name", ["fp32", "bf16", "fp16"])
def test_a_few_training_steps_on_cuda(tmp_path, name):
    config = make_config(tmp_path, cuda=True, max_iters=4, save_iters=0, precision=name, rnn_size=64)
    assert train.run(config) == 0
    losses = [float(row["loss"]) for row in read_csv(config.experiment_path / "history" / "train.csv")]
    assert len(losses) == 4 and all(loss == loss and loss < 6.0 for loss in losses)
    info = training.read_state_json(config.model_path / "iter4")
    assert info["run"]["precision"] == name
    if name == "fp32":
        on_cpu = make_config(tmp_path, "cpu", max_iters=4, save_iters=0, precision=name, rnn_size=64)
        assert train.run(on_cpu) == 0
        cpu_losses = [float(row["loss"]) for row in read_csv(on_cpu.experiment_path / "history" / "train.csv")]
        assert losses == pytest.approx(cpu_losses, rel=1e-3)


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two GPUs")
def test_two_nccl_processes_match_one_process_on_the_same_global_batch(tmp_path):
    common = dict(max_iters=6, save_iters=0, rnn_size=24, cuda=True, precision="fp32")
    single = make_config(tmp_path, "single", batch_size=4, **common)
    assert train.run(single) == 0
    ddp = make_config(tmp_path, "ddp", batch_size=2, distributed=True, num_gpus=2, **common)
    assert train.run(ddp) == 0
    a, b = weights(single.model_path / "iter6"), weights(ddp.model_path / "iter6")
    for name in a:
        torch.testing.assert_close(b[name], a[name], atol=1e-4, rtol=1e-3)
    assert training.read_state_json(ddp.model_path / "iter6")["world_size"] == 2
