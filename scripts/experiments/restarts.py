"""Every fine-tuning restart of a finished ``ulasan train`` run (``restarts`` > 1), scored on
SmSA valid-dedup (what chose among them) and SmSA test (reported only, never used to
choose), beside what the run kept and the uniform soup of all restarts.

    nice -n 19 .venv/bin/python scripts/experiments/restarts.py artifacts/train/RUN [--out F]

PyTorch fp32 checkpoints (the run's own ``reports/`` hold the int8 serving folder's scores).
Nothing here changes the product: it reads the run folder and ``data/``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from trainer.data import load_smsa
from trainer.interpolate import macro_f1_of
from trainer.modeling import load_classifier
from trainer.pipeline.data import fixed_eval_set
from trainer.restarts import RESTARTS_FILE
from trainer.train import average_state


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", type=Path, help="a run folder with restarts/ and restarts.json")
    parser.add_argument("--out", type=Path, default=None, help="write the JSON here too")
    args = parser.parse_args()

    record = json.loads((args.run / RESTARTS_FILE).read_text(encoding="utf-8"))
    sets = {
        "smsa-valid-dedup": [(e.text, str(e.label)) for e in fixed_eval_set()],
        "smsa-test": [(e.text, str(e.label)) for e in load_smsa("test")],
    }
    rows: list[dict[str, Any]] = []
    states = []
    tokenizer = model = None
    for restart in record["restarts"]:
        tokenizer, model = load_classifier(args.run / "restarts" / restart["folder"] / "checkpoint")
        states.append({k: v.clone() for k, v in model.state_dict().items()})
        rows.append({"model": f"restart seed {restart['seed']}", **_scores(model, tokenizer, sets)})
        print(json.dumps(rows[-1]), flush=True)
    assert model is not None
    model.load_state_dict(average_state(states))
    rows.append({"model": "uniform soup (all restarts)", **_scores(model, tokenizer, sets)})
    tokenizer, kept = load_classifier(args.run / "checkpoint")
    kept_name = "kept: " + " + ".join(str(s) for s in record["soup_seeds"])
    rows.append({"model": kept_name, **_scores(kept, tokenizer, sets)})
    result = {"run": args.run.name, "restarts": record, "pytorch_macro_f1": rows}
    print(json.dumps(result, indent=1))
    if args.out is not None:
        args.out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")


def _scores(model: Any, tokenizer: Any, sets: dict[str, list[tuple[str, str]]]) -> dict[str, float]:
    return {name: round(macro_f1_of(model, tokenizer, pairs), 4) for name, pairs in sets.items()}


if __name__ == "__main__":
    main()
