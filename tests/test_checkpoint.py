import json

import pytest
import torch

from sentiment_discovery import UserError, load_model, save_model
from sentiment_discovery import checkpoint

from conftest import make_model


@pytest.mark.parametrize("overrides", [dict(), dict(weight_norm=True), dict(rnn_type="lstm", layers=2, weight_norm=True, lstm_only=False)])
def test_round_trip_is_bit_identical(tmp_path, overrides):
    model = make_model(**overrides)
    model.metadata = {"sentiment_unit": 3}
    save_model(model, tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["config.json", "model.safetensors"]
    loaded = load_model(tmp_path / "m")
    tokens = torch.randint(0, 256, (2, 15))
    assert torch.equal(model(tokens)[0], loaded(tokens)[0])
    assert loaded.metadata == {"sentiment_unit": 3}
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["model"]["rnn_type"] == model.config.rnn_type and config["text"]["front_pad"] == "\n "


def test_crash_during_save_keeps_previous_model(tmp_path, monkeypatch):
    first, second = make_model(seed=1), make_model(seed=2)
    save_model(first, tmp_path / "m")

    def crash(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(checkpoint, "save_file", crash)
    with pytest.raises(RuntimeError):
        save_model(second, tmp_path / "m")
    tokens = torch.randint(0, 256, (1, 5))
    assert torch.equal(load_model(tmp_path / "m")(tokens)[0], first(tokens)[0])


def test_crash_between_renames_loads_previous(tmp_path, monkeypatch):
    first = make_model(seed=1)
    save_model(first, tmp_path / "m")
    real_replace = checkpoint.os.replace
    calls = []

    def replace(src, dst):
        calls.append(src)
        if len(calls) == 2:
            raise KeyboardInterrupt
        real_replace(src, dst)

    monkeypatch.setattr(checkpoint.os, "replace", replace)
    with pytest.raises(KeyboardInterrupt):
        save_model(make_model(seed=2), tmp_path / "m")
    tokens = torch.randint(0, 256, (1, 5))
    assert torch.equal(load_model(tmp_path / "m")(tokens)[0], first(tokens)[0])


def test_missing_directory(tmp_path):
    with pytest.raises(UserError, match="model directory .*nope does not exist"):
        load_model(tmp_path / "nope")


def test_truncated_weights(tmp_path):
    save_model(make_model(), tmp_path / "m")
    weights = tmp_path / "m" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])
    with pytest.raises(UserError, match="model.safetensors is truncated or corrupt"):
        load_model(tmp_path / "m")


def test_mismatched_config(tmp_path):
    save_model(make_model(), tmp_path / "m")
    config_path = tmp_path / "m" / "config.json"
    config = json.loads(config_path.read_text())
    config["model"]["rnn_size"] = 32
    config_path.write_text(json.dumps(config))
    with pytest.raises(UserError, match=r"tensor .* has shape \[.*\] but config.json implies"):
        load_model(tmp_path / "m")
    config["model"]["weight_norm"] = True
    config["model"]["rnn_size"] = 16
    config_path.write_text(json.dumps(config))
    with pytest.raises(UserError, match="does not match config.json \\(missing layers.0.wh_g"):
        load_model(tmp_path / "m")


def test_bad_config_json(tmp_path):
    save_model(make_model(), tmp_path / "m")
    (tmp_path / "m" / "config.json").write_text("{not json")
    with pytest.raises(UserError, match="config.json is not valid JSON"):
        load_model(tmp_path / "m")
    (tmp_path / "m" / "config.json").write_text('{"format": "other"}')
    with pytest.raises(UserError, match="is not a sentiment-discovery-model config"):
        load_model(tmp_path / "m")
    (tmp_path / "m" / "config.json").unlink()
    with pytest.raises(UserError, match="config.json is missing"):
        load_model(tmp_path / "m")


def test_bf16_storage_round_trip(tmp_path):
    model = make_model()
    save_model(model, tmp_path / "m", dtype=torch.bfloat16)
    loaded = load_model(tmp_path / "m")
    torch.testing.assert_close(loaded.layers[0].wh, model.layers[0].wh.bfloat16().float())
