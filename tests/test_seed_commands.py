"""The 2017 README's commands, verbatim, as acceptance tests.

Each command block below is copied from the 2017 release's README (the contract its users
know) and run as written, through the 2017 script names at the repository root (and, for
some, through ``sentiment-discovery``). The only substitutions:

- data: the README's relative paths (``data/amazon/reviews.json``, ``binary_sst/*.csv``)
  are kept, and hold small slices of ``../shared/data`` written into the test's working
  directory (Amazon reviews under the README's ``sentence`` key, as its preprocessed
  ``reviews.json`` had them);
- size: ``-rnn_size``, ``-embed_size``, ``-batch_size`` and ``-seq_length`` shrunk, and
  ``-max_iters`` added, so that each command finishes in seconds;
- ``-neuron``: a unit of the shrunk model. The README's 1285 was the top neuron its own
  transfer run printed, so it becomes the top neuron our transfer run prints; 2388 is a
  unit of OpenAI's 4,096, so it becomes a unit of the 64-unit stand-in for OpenAI's
  weights (random weights in the release's layout, imported with ``import-openai``).
"""

import csv
import dataclasses
import gzip
import itertools
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import typing
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import SHARED_DATA
from sentiment_discovery import cli, load_model, training
from sentiment_discovery.foundation.options import config_from_args, flag_name, no_op_flags, spellings
from sentiment_discovery.recipes import train as train_recipe
from sentiment_discovery.recipes import transfer as transfer_recipe
from sentiment_discovery.recipes import visualize as visualize_recipe

ROOT = Path(__file__).resolve().parents[1]

# --------------------------------------------------------------------------- the README's commands

TRAIN = r"""python text_reconstruction.py -experiment_dir ./experiments -experiment_name mlstm -model_dir model -cuda \
-embed_size 64 -rnn_size 4096 -layers 1 -weight_norm -lstm_only -rnn_type mlstm -dropout 0 -persist_state 1 \
-seq_length 256 -batch_size 32 -lr 0.000125 --optimizer_type=Adam -lr_scheduler LinearLR -epochs 1 \
-train data/amazon/reviews.json -valid data/amazon/reviews.json -test data/amazon/reviews.json \
-data_set_type unsupervised -lazy -text_key sentence"""

TRAIN_DISTRIBUTED = r"""python text_reconstruction.py -experiment_dir ./experiments -experiment_name mlstm -model_dir model -cuda \
-embed_size 64 -rnn_size 4096 -layers 1 -weight_norm -lstm_only -rnn_type mlstm -dropout 0 -persist_state 1 \
-seq_length 256 -batch_size 32 -lr 0.00025 --optimizer_type=Adam -lr_scheduler LinearLR -epochs 1 \
-train data/amazon/reviews.json -valid data/amazon/reviews.json -test data/amazon/reviews.json \
-data_set_type unsupervised -lazy -text_key sentence -num_gpus 2 -distributed"""

TRANSFER = r"""python3 sentiment_transfer.py -experiment_dir ./experiments -experiment_name mlstm -model_dir model -cuda \
-train binary_sst/train.csv -valid binary_sst/val.csv -test binary_sst/test.csv \
-text_key sentence -label_key label -load_model e0.pt"""

HEATMAP = r"""python3 visualize.py -experiment_dir ./experiments -experiment_name mlstm_paper -model_dir model -cuda \
-text "25 August 2003 League of Extraordinary Gentlemen: Sean Connery is one of the all time greats \
I have been a fan of his since the 1950's." -neuron 2388 -load_model e0.pt"""

GENERATE = r"""python3 visualize.py -experiment_dir ./experiments -experiment_name mlstm_paper -model_dir model -cuda \
-text "25 August 2003 League of Extraordinary Gentlemen: Sean Connery is" \
-neuron 2388 -load_model e0.pt -generate"""

STEERED = r"""python3 visualize.py -experiment_dir ./experiments -experiment_name mlstm -model_dir model -cuda \
-text "25 August 2003 League of Extraordinary Gentlemen: Sean Connery is" \
-neuron 1285 -load_model e0.pt -generate -negate -overwrite +/-1"""

SEED_BLOCKS = [TRAIN, TRAIN_DISTRIBUTED, TRANSFER, HEATMAP, GENERATE, STEERED]

# The README's flag lists: every script took the general flags, and its own.
GENERAL_FLAGS = """experiment_dir experiment_name should_test embed_size rnn_type rnn_size layers dropout
weight_norm lstm_only model_dir load_model batch_size data_size seq_length data_set_type persist_state
transpose no_wrap cache lazy preprocess shuffle text_key label_key delim drop_unlabeled binarize_sent
train split valid test cuda num_gpus benchmark rank distributed world_size verbose seed""".split()
SCRIPT_FLAGS = {
    "text_reconstruction.py": "no_loss lr lr_scheduler lr_factor optimizer_type clip epochs max_iters start_epoch start_iter".split(),
    "sentiment_transfer.py": "num_neurons no_test_eval write_results".split(),
    "visualize.py": "text neuron generate temperature overwrite negate layer".split(),
}
COMMAND_OF = {"text_reconstruction.py": "train", "sentiment_transfer.py": "transfer", "visualize.py": "visualize"}

SMALL_MODEL = {"-embed_size": "8", "-rnn_size": "64", "-batch_size": "8", "-seq_length": "64"}
PAPER_UNITS = 64  # the stand-in for OpenAI's 4,096-unit release
PROMPT = "25 August 2003 League of Extraordinary Gentlemen: Sean Connery is"
CUDA_WARNING = "warning: -cuda was given but no GPU is available; running on the CPU"
ACCURACY = r"(?:\d\d|100)\.\d\d"


def seed_argv(block: str, replace: dict[str, str] | None = None, add: tuple[str, ...] = ()) -> tuple[str, list[str]]:
    """The script and its arguments, as a shell reads the README's block (``\\`` + newline joins lines).

    ``replace`` swaps the values of flags the block has (a substitution, never a new flag);
    ``add`` appends flags.
    """
    words = shlex.split(block.replace("\\\n", ""))
    assert words[0] in ("python", "python3")
    script, args = words[1], words[2:]
    for flag, value in (replace or {}).items():
        args[args.index(flag) + 1] = value
    return script, args + list(add)


def run_script(script: str, args: list[str], cwd: Path, timeout: float = 180) -> subprocess.CompletedProcess:
    """``python <script> ARGS`` in ``cwd``, with the root script of this repository."""
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    result = subprocess.run(
        [sys.executable, str(ROOT / script), *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=timeout
    )
    assert result.returncode == 0, f"{script} {shlex.join(args)} failed:\n{result.stderr[-4000:]}"
    assert "Traceback" not in result.stderr
    return result


def console_script() -> list[str]:
    """The installed ``sentiment-discovery`` command (``python -m sentiment_discovery`` without one)."""
    installed = Path(sys.executable).with_name("sentiment-discovery")
    return [str(installed)] if installed.is_file() else [sys.executable, "-m", "sentiment_discovery"]


def assert_one_cuda_warning(stderr: str) -> None:
    if torch.cuda.is_available():
        return  # there is a GPU: -cuda uses it, nothing to warn about
    assert re.findall(r"warning: -cuda[^\r\n]*", stderr) == [CUDA_WARNING]


def lines_of(output: str) -> list[str]:
    return [line.strip() for line in re.split(r"[\r\n]+", output) if line.strip()]


# --------------------------------------------------------------------------- data slices


def write_data_slices(shared: Path, workspace: Path, amazon_reviews: int = 16) -> Path:
    """The README's data layout under ``workspace``, holding small slices of the shared data."""
    amazon = workspace / "data" / "amazon" / "reviews.json"
    amazon.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(shared / "amazon" / "reviews.jsonl.gz", "rt", encoding="utf-8") as source, open(
        amazon, "w", encoding="utf-8"
    ) as out:
        for line in itertools.islice(source, amazon_reviews):
            out.write(json.dumps({"sentence": json.loads(line)["reviewText"]}) + "\n")
    sst = workspace / "binary_sst"
    sst.mkdir(exist_ok=True)
    for ours, theirs in (("train", "train"), ("dev", "val"), ("test", "test")):
        with open(shared / "sst2" / f"{ours}.csv", encoding="utf-8") as source, open(
            sst / f"{theirs}.csv", "w", encoding="utf-8"
        ) as out:
            out.writelines(itertools.islice(source, 201))  # the header and 200 sentences
    return workspace


def shared_data_or_skip() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA} (set SENTIMENT_DISCOVERY_DATA)")
    return SHARED_DATA.resolve()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The README's training command, single process; its workspace and output."""
    workspace = write_data_slices(shared_data_or_skip(), tmp_path_factory.mktemp("seed"))
    script, args = seed_argv(TRAIN, SMALL_MODEL, add=("-max_iters", "30"))
    result = run_script(script, args, workspace)
    return workspace, result


@pytest.fixture(scope="module")
def transferred(trained):
    """The README's transfer command on the trained model; the workspace, output and top neuron."""
    workspace, _ = trained
    script, args = seed_argv(TRANSFER)
    result = run_script(script, args, workspace)
    top = re.search(r"^neuron\(s\) (\d+)(?:, \d+)* are top sentiment neurons$", result.stdout, re.M)
    assert top, result.stdout
    return workspace, result, int(top.group(1))


@pytest.fixture(scope="module")
def paper_model(trained):
    """OpenAI's release imported into mlstm_paper/model/e0, as the README's visualize commands expect."""
    workspace, _ = trained
    rng = np.random.default_rng(0)
    embed, hidden = 64, PAPER_UNITS
    normal = lambda *shape: rng.normal(0, 0.5, shape).astype(np.float32)  # noqa: E731
    gain = lambda n: rng.uniform(0.5, 1.5, n).astype(np.float32)  # noqa: E731
    arrays = [
        normal(256, embed), normal(embed, 4 * hidden),
        *(normal(hidden, hidden) for _ in range(4)),
        normal(embed, hidden), normal(hidden, hidden), normal(4 * hidden),
        gain(4 * hidden), gain(4 * hidden), gain(hidden), gain(hidden),
        normal(hidden, 256), normal(256),
    ]  # the 15 arrays of the release's model/ folder, in its shapes
    release = workspace / "openai" / "model"
    release.mkdir(parents=True)
    for index, array in enumerate(arrays):
        np.save(release / f"{index}.npy", array)
    destination = workspace / "experiments" / "mlstm_paper" / "model" / "e0"
    assert cli.main(["import-openai", str(release), str(destination)]) == 0
    return workspace, 2388 % PAPER_UNITS


# --------------------------------------------------------------------------- the commands


def test_the_blocks_are_the_seed_readme_s():
    """The blocks above are the README's text, character for character (where the README is here)."""
    readmes = [path.read_text(encoding="utf-8") for path in (ROOT.parent / "shared" / "seed").glob("*.txt")]
    readme = next((text for text in readmes if "text_reconstruction.py" in text), None)
    if readme is None:
        pytest.skip("the 2017 README is not in ../shared/seed")
    for block in SEED_BLOCKS:
        assert block in readme


@pytest.mark.slow
def test_training_command_writes_the_seed_layout(trained):
    workspace, result = trained
    assert_one_cuda_warning(result.stderr)
    # 2017 flags that mean nothing now are accepted with a notice, never refused.
    assert "notice: -lazy has no effect" in result.stderr
    assert "notice: -data_set_type has no effect" in result.stderr
    model_dir = workspace / "experiments" / "mlstm" / "model"
    e0 = model_dir / "e0"
    assert (e0 / "config.json").is_file() and (e0 / "model.safetensors").is_file()
    state = training.read_state_json(e0)
    assert state["epoch"] == 0
    assert (model_dir / "iter30").is_dir()  # -max_iters takes precedence over -epochs 1, as in 2017
    model = load_model(e0)
    config = model.config
    assert (config.rnn_type, config.rnn_size, config.embed_size, config.layers) == ("mlstm", 64, 8, 1)
    assert config.weight_norm and config.lstm_only
    flags = state["run"]["flags"]
    assert flags["optimizer_type"] == "Adam" and flags["lr"] == 0.000125 and flags["persist_state"] == 1
    history = workspace / "experiments" / "mlstm" / "history"
    assert (history / "train.csv").is_file() and (history / "eval.csv").is_file()
    with open(history / "eval.csv", newline="") as handle:
        splits = {row["split"] for row in csv.DictReader(handle)}
    assert splits == {"valid", "test"}


@pytest.mark.slow
def test_transfer_command_prints_the_seed_lines(transferred):
    workspace, result, top = transferred
    assert_one_cuda_warning(result.stderr)
    lines = result.stdout.splitlines()
    expected = [
        rf"{ACCURACY}/{ACCURACY}/{ACCURACY} train/val/test accuracy w/ all_neurons",
        r"\d\d\.\d\d regularization coef w/ all_neurons",
        r"\d{5} features used w/ all neurons all_neurons",
        r"neuron\(s\) \d+, \d+, \d+, \d+, \d+ are top sentiment neurons",
        rf"{ACCURACY}/{ACCURACY}/{ACCURACY} train/val/test accuracy w/ n_neurons",
        r"\d\d\.\d\d regularization coef w/ n_neurons",
        r"\d{5} features used w/ all neurons n_neurons",
    ]
    assert len(lines) >= len(expected)
    for pattern, line in zip(expected, lines):
        assert re.fullmatch(pattern, line), (pattern, line)
    assert 0 <= top < 64
    # "These results are saved to ./experiments/mlstm/binary_sst/e0/*"
    results_dir = workspace / "experiments" / "mlstm" / "binary_sst" / "e0"
    results = json.loads((results_dir / "results.json").read_text())
    assert results["texts"] == {"train": 200, "valid": 200, "test": 200}
    assert results["model"]["path"].endswith(str(Path("mlstm", "model", "e0")))
    assert results["top_units"][0] == top
    assert (results_dir / "classifier.json").is_file() and (results_dir / f"neuron_{top}_histogram.png").is_file()


@pytest.mark.slow
def test_analysing_own_data_without_labels(transferred):
    """The README: train on SST with a trained model, evaluate on your own -test, -no_test_eval without labels."""
    workspace, _, _ = transferred
    own = workspace / "my_data" / "reviews.csv"
    own.parent.mkdir()
    with gzip.open(shared_data_or_skip() / "imdb" / "test.csv.gz", "rt", encoding="utf-8", newline="") as source:
        texts = [row["text"][:400] for row in itertools.islice(csv.DictReader(source), 30)]
    with open(own, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["sentence"])  # no label column
        writer.writerows([text] for text in texts)
    _, args = seed_argv(
        TRANSFER, {"-test": "my_data/reviews.csv"}, add=("-no_test_eval", "-write_results", "my_data/results.csv")
    )
    result = subprocess.run(
        [*console_script(), "transfer", *args], cwd=workspace, capture_output=True, text=True,
        env={**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}, timeout=180,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert_one_cuda_warning(result.stderr)
    assert re.match(rf"{ACCURACY}/{ACCURACY}/--\.-- train/val/test accuracy w/ all_neurons$", result.stdout, re.M)
    with open(workspace / "my_data" / "results.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["sentence"] for row in rows] == texts  # one row per test text, in input order
    top_units = json.loads((workspace / "experiments/mlstm/binary_sst/e0/results.json").read_text())["top_units"]
    assert list(rows[0]) == [
        "sentence", "prediction", "probability_all_neurons", "probability_n_neurons",
        *(f"neuron_{unit}" for unit in top_units),
    ]
    for row in rows:
        assert row["prediction"] in ("0", "1") and 0.0 <= float(row["probability_all_neurons"]) <= 1.0


def written_files(stderr: str) -> list[Path]:
    return [Path(line[len("wrote "):]) for line in lines_of(stderr) if line.startswith("wrote ")]


@pytest.mark.slow
def test_heatmap_command(paper_model):
    workspace, unit = paper_model
    script, args = seed_argv(HEATMAP, {"-neuron": str(unit)})
    result = run_script(script, args, workspace)
    assert_one_cuda_warning(result.stderr)
    png, page = written_files(result.stderr)
    # "saved to a png file [named after] the first 100 characters of text at <experiment_dir>/<experiment_name>/heatmaps/"
    assert png.parent == Path("experiments", "mlstm_paper", "heatmaps")
    assert png.name == "25 August 2003 League of Extraordinary Gentlemen_ Sean Connery is one of the all time greats I have.png"
    assert (workspace / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"unit {unit} of layer 0" in (workspace / page).read_text(encoding="utf-8")


@pytest.mark.slow
def test_generate_command(paper_model):
    workspace, unit = paper_model
    script, args = seed_argv(GENERATE, {"-neuron": str(unit)})
    result = run_script(script, args, workspace)
    assert_one_cuda_warning(result.stderr)
    printed = result.stdout.rstrip("\n")
    assert printed.startswith(PROMPT) and len(printed) > len(PROMPT) + 100  # up to -seq_length 256 in all
    png, _ = written_files(result.stderr)
    assert (workspace / png).is_file() and png.name.startswith(PROMPT.replace(":", "_"))


@pytest.mark.slow
def test_generate_negated_and_overwritten_both_ways(transferred, monkeypatch, capsys):
    """``-overwrite +/-1``: +1 through the 2017 script, -1 through ``sentiment-discovery``."""
    workspace, _, top = transferred
    positive = STEERED.replace("+/-1", "+1")
    negative = STEERED.replace("+/-1", "-1")
    script, args = seed_argv(positive, {"-neuron": str(top)})
    result = run_script(script, args, workspace)
    assert_one_cuda_warning(result.stderr)
    _, page_positive = written_files(result.stderr)

    monkeypatch.chdir(workspace)
    _, args = seed_argv(negative, {"-neuron": str(top)})
    assert cli.main(["visualize", *args]) == 0
    captured = capsys.readouterr()
    assert_one_cuda_warning(captured.err)
    _, page_negative = written_files(captured.err)

    texts = [result.stdout.rstrip("\n"), captured.out.rstrip("\n")]
    assert all(text.startswith(PROMPT) and len(text) > len(PROMPT) for text in texts)
    assert texts[0] != texts[1]  # the held unit steers the continuation
    # -negate: the unit is a negative-sentiment one, so +1 (positive text) holds it at -1.
    assert "unit held at -1" in (workspace / page_positive).read_text(encoding="utf-8")
    assert "unit held at +1" in (workspace / page_negative).read_text(encoding="utf-8")
    assert "colours negated" in (workspace / page_negative).read_text(encoding="utf-8")


@pytest.mark.slow
def test_distributed_training_command_then_e0_pt(tmp_path, monkeypatch, capsys):
    """``-num_gpus 2 -distributed``: two Gloo processes on the CPU. It stops at -max_iters within
    epoch 0, so (as 2017's e0.pt, saved when the epoch's loop ended) ``-load_model e0.pt`` is
    that epoch's newest checkpoint."""
    if torch.cuda.is_available() and torch.cuda.device_count() < 2:
        pytest.skip("-cuda -num_gpus 2 needs two GPUs where there is a GPU")
    workspace = write_data_slices(shared_data_or_skip(), tmp_path)
    script, args = seed_argv(TRAIN_DISTRIBUTED, SMALL_MODEL, add=("-max_iters", "6"))
    result = run_script(script, args, workspace)
    assert_one_cuda_warning(result.stderr)  # printed by the first process only (-verbose 1)
    model_dir = workspace / "experiments" / "mlstm" / "model"
    assert sorted(p.name for p in model_dir.iterdir()) == ["iter6"]
    state = training.read_state_json(model_dir / "iter6")
    assert state["iteration"] == 6 and state["epoch"] == 0
    assert state["run"]["flags"]["num_gpus"] == 2 and state["run"]["flags"]["distributed"]

    monkeypatch.chdir(workspace)
    _, args = seed_argv(HEATMAP.replace("mlstm_paper", "mlstm"), {"-neuron": "3"})
    assert cli.main(["visualize", *args]) == 0
    err = capsys.readouterr().err
    assert "notice: -load_model e0.pt: epoch 0 did not finish" in err and "iter6" in err
    assert written_files(err)[0].is_file()
    # No checkpoint of epoch 1 at all: one error line that says what there is.
    _, args = seed_argv(HEATMAP.replace("mlstm_paper", "mlstm"), {"-neuron": "3", "-load_model": "e1.pt"})
    assert cli.main(["visualize", *args]) == 2
    assert [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")] == [
        f"error: no model 'e1.pt': not a directory, and {Path('experiments/mlstm/model/e1')} does not exist; "
        f"{Path('experiments/mlstm/model')} holds iter6"
    ]


def test_steered_command_before_the_model_exists_is_one_error_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    _, args = seed_argv(STEERED.replace("+/-1", "+1"))
    assert cli.main(["visualize", *args]) == 2
    err = capsys.readouterr().err
    assert [line for line in err.splitlines() if line.startswith("error:")] == [
        f"error: no model 'e0.pt': not a directory, and {Path('experiments/mlstm/model/e0')} does not exist"
    ]


def test_unknown_flag_and_bad_value_are_one_error_line(capsys):
    assert cli.main(["visualize", "-overwrite", "+/-1"]) == 2  # the README's notation, not a number
    assert cli.main(["transfer", "-no_such_flag", "1"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "error: argument -overwrite/--overwrite: invalid float value: '+/-1' (see `sentiment-discovery visualize --help`)",
        "error: unrecognized arguments: -no_such_flag 1 (see `sentiment-discovery transfer --help`)",
    ]


# --------------------------------------------------------------------------- the flags


def example_value(field, config_class) -> list[str]:
    hint = str(typing.get_type_hints(config_class)[field.name])
    if "bool" in hint:
        return []
    if field.metadata.get("choices"):
        return [str(field.metadata["choices"][0])]
    return ["1"] if ("int" in hint or "float" in hint) else ["x.csv"]


@pytest.mark.parametrize("script", list(SCRIPT_FLAGS))
def test_every_readme_flag_is_accepted_in_every_spelling(script, capsys):
    """Each flag of the README's lists, for each script that took it: ``-a_b``, ``--a_b``,
    ``--a-b`` and ``--a_b=value``; one that means nothing now is a no-op with a notice."""
    command = COMMAND_OF[script]
    config_class = cli.config_class(command)
    fields = {  # every name a flag is spelled from (its own and its aliases): its field
        name: f
        for f in dataclasses.fields(config_class)
        if f.metadata
        for name in (flag_name(f), *f.metadata.get("aliases", ()))
    }
    no_ops = no_op_flags(config_class)  # flag name -> why it has no effect
    assert not set(no_ops) & set(fields), "a no-op flag is also a field"
    parser = cli.build_parser()
    required = []
    for field in set(fields.values()):
        if field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            required += [f"-{flag_name(field)}", *example_value(field, config_class)]
    for name in GENERAL_FLAGS + SCRIPT_FLAGS[script]:
        assert name in fields or name in no_ops, f"{script} does not accept the README's -{name}"
        if name in no_ops:
            # a 2017 switch (-lazy) or a flag with a value (-rnn_size 4096): ignored either way
            forms = [[spelling, *value] for spelling in spellings(name) for value in ([], ["1"])]
            forms.append([f"--{name}=1"])
        else:
            field = fields[name]
            value = example_value(field, config_class)
            forms = [[spelling, *value] for spelling in spellings(name)]
            if value:
                forms.append([f"--{name}={value[0]}"])
        for form in forms:
            namespace = parser.parse_args([command, *required, *form])
            if name not in no_ops:
                assert hasattr(namespace, fields[name].name), form
            config_from_args(config_class, namespace, command=command)
            notices = [line for line in capsys.readouterr().err.splitlines() if line.startswith("notice:")]
            if name in no_ops:
                assert notices == [f"notice: -{name} has no effect: {no_ops[name]}"], form
            else:
                assert not any(f"-{name} " in line for line in notices), form


def test_no_op_notices_are_one_line_per_reason(capsys):
    namespace = cli.build_parser().parse_args(
        ["transfer", "-load_model", "e0.pt", "-train", "t.csv", "-rnn_size", "4096", "-embed_size", "64", "-lazy"]
    )
    config_from_args(transfer_recipe.TransferConfig, namespace)
    assert capsys.readouterr().err.splitlines() == [
        "notice: -embed_size, -rnn_size have no effect: the architecture is read from the model directory (config.json).",
        "notice: -lazy has no effect: the labelled files are read whole; the features are cached on disk.",
    ]


def defaults(config_class) -> dict:
    return {f.name: f.default for f in dataclasses.fields(config_class) if f.default is not dataclasses.MISSING}


def test_defaults_the_seed_states_are_ours():
    train, transfer, visualize = (defaults(c) for c in (
        train_recipe.TrainConfig, transfer_recipe.TransferConfig, visualize_recipe.VisualizeConfig
    ))
    # Stated in the README's text and flag lists.
    assert train["clip"] == 1.0  # "Clip gradients to this maximum value. Default: 1."
    assert train["save_iters"] == 5000  # "save the most current model ... every 5000 iterations"
    assert train["world_size"] == 0  # "Do not set. The scripts will automatically set it equal to num_gpus"
    # And the 2017 scripts' own defaults (cfg/configure_*.py), which the README points to.
    for name, value in dict(
        experiment_dir="./experiments", experiment_name="mlstm", model_dir="model", text_key="sentence",
        lr=0.0005, lr_factor=0.95, rnn_type="mlstm", embed_size=64, rnn_size=4096, layers=1, dropout=0.0,
        weight_norm=False, lstm_only=False, batch_size=32, seq_length=256, persist_state=0, no_wrap=False,
        shuffle=False, verbose=1, rank=-1, num_gpus=1, seed=1234, start_epoch=0, start_iter=0,
    ).items():
        assert train[name] == value, name
    assert (transfer["label_key"], transfer["num_neurons"], transfer["no_test_eval"]) == ("label", 1, False)
    for name, value in dict(text="The meaning of life is ", temperature=0.4, seq_length=256, layer=-1).items():
        assert visualize[name] == value, name


def test_defaults_that_differ_from_2017_are_explained():
    """The deliberate differences are each in docs/seed.md's table, with the 2017 value."""
    seed_md = (ROOT / "docs" / "seed.md").read_text(encoding="utf-8")
    table = seed_md.split("## Defaults that differ", 1)[1].split("\n## ", 1)[0]
    train, transfer, visualize = (defaults(c) for c in (
        train_recipe.TrainConfig, transfer_recipe.TransferConfig, visualize_recipe.VisualizeConfig
    ))
    differences = [  # (flag, 2017 default, ours)
        ("epochs", "100", train["epochs"]),
        ("optimizer_type", "SGD", train["optimizer_type"]),
        ("lr_scheduler", "ExponentialLR", train["lr_scheduler"]),
        ("split", "1.", train["split"]),
        ("split", "1.", transfer["split"]),
        ("batch_size", "128", transfer["batch_size"]),
        ("neuron", "0", visualize["neuron"]),
        ("overwrite", "0", visualize["overwrite"]),
    ]
    for flag, theirs, ours in differences:
        ours = "none" if ours is None else ours
        rows = [line for line in table.splitlines() if line.startswith(f"| `-{flag}`")]
        assert any(f"`{theirs}`" in row and f"`{ours}`" in row for row in rows), (
            f"docs/seed.md does not explain the -{flag} default ({theirs} in 2017, {ours} here)"
        )
