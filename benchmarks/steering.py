"""Steering with the sentiment unit: does holding it at +1 / -1 make the samples positive / negative?

Samples ``--samples`` continuations of ``--prompt`` three times with the package's
generation API (:func:`sentiment_discovery.visualize.generate`, the same code as
``sentiment-discovery visualize -generate -overwrite``): unsteered, with the unit held at
+1 and with it held at -1 (with ``--negate``, for a unit that fires low on positive text,
the held values are flipped so that "+1" still means "positive"). Sample ``i`` uses seed
``--seed + i`` in every condition, so the three conditions are paired: they differ only
in the held unit. Every continuation is then scored by a classifier that ``transfer``
fitted on the same model (:class:`sentiment_discovery.transfer.SentimentClassifier`):
mean P(positive), the fraction labelled positive, and a few examples per condition.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/steering.py --model experiments/mlstm/model/e0 \\
        --classifier experiments/mlstm/sst2/e0 --samples 100 --length 200 --temperature 0.4 \\
        --prompt "This movie was"

``--unit`` defaults to the classifier's top unit, and then ``--negate`` to its sign.
Generation is one sample at a time (the API generates one sequence); a 1,024-unit model
takes about 0.4 s a 200-byte sample on one core. Prints a table and writes JSON.
"""

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from sentiment_discovery.foundation.text import escape_control

ROOT = Path(__file__).resolve().parents[1]
CONDITIONS = (("unsteered", None), ("+1", 1.0), ("-1", -1.0))


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="model directory the classifier was fitted on")
    parser.add_argument("--classifier", required=True, help="results directory of `transfer` (or its classifier.json)")
    parser.add_argument("--unit", type=int, default=None, help="unit to hold (default: the classifier's top unit)")
    parser.add_argument("--negate", action="store_true", default=None,
                        help="the unit fires low on positive text: hold it at -1 for '+1' and at +1 for '-1' "
                             "(default: from the classifier's sign when --unit is not given)")
    parser.add_argument("--layer", type=int, default=-1, help="layer of the unit (-1: the top one)")
    parser.add_argument("--samples", type=int, default=100, help="samples per condition")
    parser.add_argument("--length", type=int, default=200, help="bytes generated per sample")
    parser.add_argument("--temperature", type=float, default=0.4, help="sampling temperature (0: greedy)")
    parser.add_argument("--prompt", default="This movie was", help="start of every sample")
    parser.add_argument("--seed", type=int, default=1234, help="sample i uses seed + i, in every condition")
    parser.add_argument("--value", type=float, default=1.0, help="magnitude of the held value (default 1)")
    parser.add_argument("--score", choices=("continuation", "full"), default="continuation",
                        help="score the generated continuation alone (default) or prompt + continuation")
    parser.add_argument("--examples", type=int, default=3, help="example samples shown per condition")
    parser.add_argument("--json", default=str(ROOT / "experiments" / "benchmarks" / "steering.json"))
    args = parser.parse_args(argv)
    if args.samples < 1 or args.length < 1:
        parser.error("--samples and --length must be at least 1")
    if args.temperature < 0:
        parser.error("--temperature must be 0 (greedy) or more")
    return args


def printable(text: str) -> str:
    """One line, whitespace runs collapsed, control characters escaped (they could drive the terminal)."""
    return escape_control(" ".join(text.split()))


def machine() -> dict:
    import torch

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
    }


def main(argv: list[str] | None = None) -> dict:
    from sentiment_discovery import load_model
    from sentiment_discovery.foundation.errors import UserError
    from sentiment_discovery.transfer import SentimentClassifier
    from sentiment_discovery.visualize import check_unit, generate, layer_index, prompt_bytes

    args = parse_args(argv)
    started = time.perf_counter()
    try:
        classifier = SentimentClassifier.load(args.classifier, model=args.model)
        model = load_model(args.model)
        unit, negate = args.unit, bool(args.negate)
        if unit is None:
            unit = classifier.top_units[0]
            if args.negate is None:
                negate = classifier.top_unit_signs[0] < 0
        check_unit(model, unit)
        layer = layer_index(model, args.layer)
        prompt = prompt_bytes(model, args.prompt, generate=True)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    front = model.text_options.front_pad.encode("utf-8")
    shown_prompt = prompt[len(front):].decode("utf-8", errors="replace") if prompt.startswith(front) else args.prompt
    if unit in classifier.top_units and args.negate is None and args.unit is not None:
        sign = classifier.top_unit_signs[classifier.top_units.index(unit)]
        if sign < 0:
            print(f"notice: the classifier found unit {unit} firing low on positive text; pass --negate to steer "
                  "'+1' towards positive", file=sys.stderr)

    conditions = []
    for name, value in CONDITIONS:
        held = None if value is None else (-value if negate else value) * args.value
        start = time.perf_counter()
        texts = []
        for index in range(args.samples):
            trace = generate(model, prompt, unit, args.length, layer=layer, temperature=args.temperature,
                             overwrite=held, seed=args.seed + index)
            texts.append(trace.generated_text)
        seconds = time.perf_counter() - start
        print(f"{name}: {args.samples} samples in {seconds:.1f} s", file=sys.stderr, flush=True)
        conditions.append({"condition": name, "held_value": held, "texts": texts, "generate_seconds": round(seconds, 2)})

    score_start = time.perf_counter()
    for condition in conditions:
        scored = condition["texts"] if args.score == "continuation" else [shown_prompt + t for t in condition["texts"]]
        features = classifier.features(scored)
        positive = classifier.predict_proba(features)[:, 1]
        top_unit = classifier.predict_proba(features, use="n_neurons")[:, 1]
        condition.update(
            mean_p_positive=float(positive.mean()),
            std_p_positive=float(positive.std()),
            fraction_positive=float(np.mean(classifier.predict(features) == 1)),
            mean_p_positive_top_unit=float(top_unit.mean()),
            samples=[{"seed": args.seed + i, "text": text, "p_positive": float(p), "p_positive_top_unit": float(q)}
                     for i, (text, p, q) in enumerate(zip(condition.pop("texts"), positive, top_unit))],
        )
        condition["examples"] = condition["samples"][: args.examples]
    score_seconds = time.perf_counter() - score_start

    by_name = {condition["condition"]: condition for condition in conditions}
    plus = np.array([s["p_positive"] for s in by_name["+1"]["samples"]])
    minus = np.array([s["p_positive"] for s in by_name["-1"]["samples"]])
    paired = {
        "mean_p_positive_difference": float(np.mean(plus - minus)),
        "fraction_pairs_plus_more_positive": float(np.mean(plus > minus)),
        "identical_samples_plus_minus": int(sum(a["text"] == b["text"] for a, b in
                                                zip(by_name["+1"]["samples"], by_name["-1"]["samples"]))),
    }

    print(f"unit {unit} of layer {layer}{' (negated)' if negate else ''}; prompt {shown_prompt!r}; "
          f"{args.samples} samples x {args.length} bytes at temperature {args.temperature:g}")
    print(f"{'condition':<10} {'held':>6} {'mean P(pos)':>11} {'std':>6} {'labelled +':>10} {'P(pos) top unit':>15}")
    for condition in conditions:
        held = "--" if condition["held_value"] is None else f"{condition['held_value']:+g}"
        print(f"{condition['condition']:<10} {held:>6} {condition['mean_p_positive']:>11.3f} "
              f"{condition['std_p_positive']:>6.3f} {100 * condition['fraction_positive']:>9.1f}% "
              f"{condition['mean_p_positive_top_unit']:>15.3f}")
    print(f"paired (+1 vs -1, same seed): mean difference {paired['mean_p_positive_difference']:+.3f}, "
          f"+1 more positive in {100 * paired['fraction_pairs_plus_more_positive']:.0f}% of pairs")
    for condition in conditions:
        print(f"\n-- {condition['condition']} examples")
        for example in condition["examples"]:
            print(f"  [{example['p_positive']:.2f}] {printable(shown_prompt + example['text'])}")

    report = {
        "benchmark": "steering",
        "model": {"path": str(Path(args.model).resolve()), "weights_sha256": classifier.model.weights_sha256,
                  "rnn_size": model.config.rnn_size},
        "classifier": str(classifier.source),
        "unit": unit,
        "layer": layer,
        "negate": negate,
        "prompt": args.prompt,
        "prompt_bytes": len(prompt),
        "samples": args.samples,
        "length": args.length,
        "temperature": args.temperature,
        "seed": args.seed,
        "scored": args.score,
        "reproduce": (
            "sample i of a condition is `sentiment-discovery visualize -load_model MODEL -neuron UNIT -text PROMPT "
            f"-generate -seq_length {len(prompt) + args.length} -temperature {args.temperature:g} -seed SEED+i"
            " [-overwrite HELD]` (the printed text is the prompt and the sample)"
        ),
        "conditions": conditions,
        "paired": paired,
        "timing": {
            "generate_seconds": round(sum(c["generate_seconds"] for c in conditions), 2),
            "score_seconds": round(score_seconds, 2),
            "total_seconds": round(time.perf_counter() - started, 2),
        },
        "machine": machine(),
    }
    output = Path(args.json)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    print(f"\nwrote {output}", file=sys.stderr)
    return report


if __name__ == "__main__":
    main()
