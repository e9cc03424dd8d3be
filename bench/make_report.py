"""Produce docs/reference-report/ on real MNIST: seed and default presets, a small tuned search.

    python bench/make_report.py [--source ../shared/data/mnist] [--n-trials 6]

Runs, in a temporary working directory with its own stores: `pipeline main --preset seed`,
`pipeline main` (default preset) and `pipeline main --tune`, then `pipeline report` into the
repository's docs/reference-report/ folder.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def studies(uri: str) -> None:
    """Each study's budget: trials, pruned trials, wall time of its tune run, trials per hour."""
    import mlflow

    mlflow.set_tracking_uri(uri)
    frame = mlflow.search_runs(
        experiment_names=["mnist"], filter_string="tags.`pipeline.stage` = 'tune'"
    )
    for _, run in frame.iterrows():
        seconds = (run["end_time"] - run["start_time"]).total_seconds()
        trials = int(run["tags.optuna.trials"])
        print(
            f"# study {run['tags.pipeline.study']}: {trials} trials "
            f"({run['tags.optuna.pruned']} pruned) in {seconds:.0f} s, "
            f"{3600 * trials / seconds:.0f} trials/h",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default=str(REPO.parent / "shared" / "data" / "mnist"))
    parser.add_argument("--n-trials", type=int, default=6)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-report-") as tmp:
        workdir = Path(tmp)
        env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{workdir / 'mlflow.db'}"}
        env.pop("MLFLOW_RUN_ID", None)
        jobs = [
            ["main", "--arch", "both", "--preset", "seed", "--source", options.source],
            ["main", "--arch", "both", "--source", options.source],
            ["main", "--arch", "both", "--tune", "--n-trials", str(options.n_trials)]
            + ["--source", options.source],
            ["report", "--output-dir", str(workdir / "reports")],
        ]
        for job in jobs:
            started = time.perf_counter()
            subprocess.run(
                [sys.executable, "-m", "pipeline", *job], cwd=workdir, env=env, check=True
            )
            print(f"# {' '.join(job)}: {time.perf_counter() - started:.0f} s", flush=True)
        studies(env["MLFLOW_TRACKING_URI"])
        target = REPO / "docs" / "reference-report"
        target.mkdir(exist_ok=True)
        for name in ("report.md", "learning_curves.png"):
            shutil.copy(workdir / "reports" / name, target / name)
    print(f"wrote {target / 'report.md'}")


if __name__ == "__main__":
    main()
