"""`embrec tune` on ML-100K: search time, best validation RMSE, and the tuned setting's test RMSE
against the `default` preset on the same 90/10 split.

Runs the command as a user would (``embrec tune --data ml-100k --model biased-mf --trials 40
--test-size 0.1``), then trains the written TOML and the ``default`` preset on the same split
(split seed 0, the one tuning used: its test rows were never seen by the search) with training
seeds 0, 1 and 2, and reports the test RMSE of each. Writes benchmarks/results/tune_ml100k.json.

    python benchmarks/tune_ml100k.py [--trials 40]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

import embrec
from embrec.commands.configs import override
from embrec.models import MODELS
from embrec.presets import PRESETS

RESULTS = Path(__file__).parent / "results" / "tune_ml100k.json"


def _run_tune(trials: int, folder: Path) -> tuple[dict, float, Path]:
    out = folder / "best.toml"
    command = [sys.executable, "-m", "embrec", "tune", "--data", "ml-100k", "--model",
               "biased-mf", "--trials", str(trials), "--test-size", "0.1",
               "--storage", f"sqlite:///{folder / 'tune.db'}", "--out", str(out), "--json"]
    started = time.perf_counter()
    run = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(run.stdout), time.perf_counter() - started, out


def _test_rmse(model: object, train_config: embrec.TrainConfig, seeds: list[int]) -> list[float]:
    ratings = embrec.load_dataset("ml-100k")
    train, test = embrec.split(ratings, test_size=0.1, seed=0)
    values = []
    for seed in seeds:
        rec = embrec.fit(model, train, dataclasses.replace(train_config, seed=seed))
        values.append(float(embrec.evaluate(rec, test, metrics=["rmse"])["rmse"]))
    return values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=40)
    args = parser.parse_args()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        summary, wall, toml_path = _run_tune(args.trials, Path(tmp))
        config = tomllib.loads(toml_path.read_text())
    model_table = dict(config["model"])
    model = override(MODELS[model_table.pop("name")](), model_table)
    tuned_train = override(embrec.TrainConfig(), config["train"])
    seeds = [0, 1, 2]
    tuned = _test_rmse(model, tuned_train, seeds)
    default = _test_rmse(PRESETS["default"].model, PRESETS["default"].train, seeds)
    record = {
        "command": "embrec tune --data ml-100k --model biased-mf --trials "
                   f"{args.trials} --test-size 0.1 --storage sqlite:///tune.db",
        "wall_seconds": wall, "trials_in_study": summary["trials"],
        "trial_states": summary.get("states"),
        "best_validation_rmse": summary["value"],
        "validation": "10% of the 90% training split (81k fit / 9k validation ratings)",
        "best_trials": summary["best_trials"], "tuned_model": summary["model"],
        "tuned_train": summary["train"],
        "test_rmse": {"split": "random 90/10, split seed 0 (the split tuning used)",
                      "training_seeds": seeds, "tuned": tuned, "default_preset": default,
                      "tuned_mean": sum(tuned) / 3, "default_mean": sum(default) / 3},
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                    "load_average_before": load_before, "load_average_after": os.getloadavg(),
                    "torch_threads": __import__("torch").get_num_threads()},
    }
    RESULTS.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps({k: record[k] for k in ("wall_seconds", "best_validation_rmse",
                                             "test_rmse")}, indent=2))


if __name__ == "__main__":
    main()
