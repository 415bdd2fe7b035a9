"""Kill ``embrec`` saves with SIGKILL at random moments and check nothing is ever half or lost.

Each round starts a child process that saves a model over an existing one (whose
folder also holds a user's file), kills it after a random 0.5-4 s, then loads the
target: it must be the whole old or the whole new model, with the user's file
intact. A last ordinary save must leave nothing but the target beside it.

Usage: ``PYTHONPATH=src python3 benchmarks/crash_saves.py [--rounds 20]``; writes
``benchmarks/results/crash_saves.json``.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "src")]

from embrec.recommender import load, save  # noqa: E402
from tests.test_modeldir import _child  # noqa: E402
from tests.test_recommender import model_rec  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "crash_saves.json"


def main() -> None:
    """Run the rounds and write the counts."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp())
    target = tmp / "run"
    old = model_rec("biased-mf", seed=1)
    save(old, target)
    (target / "keep.txt").write_text("mine")
    pairs = (np.arange(1, 16), np.arange(1, 16))
    whole = [model_rec("biased-mf", seed=s).predict(*pairs) for s in (1, 2)]
    rng = np.random.default_rng(1)
    killed = violations = 0
    for _ in range(args.rounds):
        child = _child("never", 1, 2, target)
        time.sleep(float(rng.uniform(0.5, 4.0)))
        if child.poll() is None:
            child.send_signal(signal.SIGKILL)
            killed += 1
        child.wait()
        got = load(target).predict(*pairs)
        ok = any(np.array_equal(got, w) for w in whole)
        violations += not ok or (target / "keep.txt").read_text() != "mine"
    save(old, target)
    left = sorted(p.name for p in tmp.iterdir())
    result = {"rounds": args.rounds, "killed_while_running": killed,
              "half_or_lost_models": violations, "left_beside_target": left}
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
