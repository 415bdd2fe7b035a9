"""Before/after check of a refactor: the same seeded fits on the same rows, two source trees.

Usage: ``python benchmarks/refactor_ab.py OLD_SRC NEW_SRC [PRESET ...]`` runs each preset on
ML-100K (``embrec.split`` 10%, seed 0; training seed 0) in a fresh process per tree, trees
alternating, and prints the test RMSE (must be equal) and the first and second ``fit`` seconds
of the process (the first includes the kernel's cache load).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

CHILD = """
import dataclasses, json, sys, time
import embrec
from embrec.presets import PRESETS
from embrec.training.fit import fit
train, test = embrec.split(embrec.load_dataset("ml-100k"), test_size=0.1, seed=0)
preset = PRESETS[sys.argv[1]]
config = dataclasses.replace(preset.train, seed=0)
times = []
for _ in range(2):
    started = time.perf_counter()
    rec = fit(preset.model, train, config)
    times.append(round(time.perf_counter() - started, 3))
rmse = round(float(embrec.evaluate(rec, test)["rmse"]), 5)
print(json.dumps({"preset": sys.argv[1], "rmse": rmse, "first_fit_s": times[0],
                  "second_fit_s": times[1]}))
"""


def main() -> None:
    old, new, *presets = sys.argv[1:]
    for preset in presets or ["default", "movielens-notebook"]:
        for _ in range(2):
            for name, src in (("before", old), ("after", new)):
                out = subprocess.run([sys.executable, "-c", CHILD, preset], text=True, check=True,
                                     capture_output=True, env={**os.environ, "PYTHONPATH": src})
                print(json.dumps({"tree": name, **json.loads(out.stdout.splitlines()[-1])}))


if __name__ == "__main__":
    main()
