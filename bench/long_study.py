"""Does a long study stay flat in memory and in trials per hour? And 1 or 2 local workers?

    python bench/long_study.py [--trials 200] [--workers 1 2] [--epochs-range 1 3]

For each --workers W, in a fresh working directory with its own stores (data from --source): W
`pipeline tune` processes at once on one MLP study of --trials trials in all (default sampler and
pruner, a small epoch range so that it fits a budget). Prints, from the study's own record:
- the curve: per trial (in order of completion) the resident memory of the process that ran it
  (`rss_mb`) and its seconds, every 10th trial;
- after trial 10, the spread (max - min) of rss_mb;
- trials per hour over the first 50 and the last 50 trials finished, and their ratio;
- the wall time, CPU seconds and trials per hour of the whole study.

Run it on an otherwise idle machine: throughput over time is what it measures.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import optuna
from common import Workspace, children_cpu  # bench/, beside this script

from pipeline.tracking import names

REPO = Path(__file__).resolve().parents[1]


def per_hour(trials: list[optuna.trial.FrozenTrial]) -> float:
    """Trials finished per hour over these (consecutive, by completion) trials."""
    span = (trials[-1].datetime_complete - trials[0].datetime_complete).total_seconds()
    return 3600 * (len(trials) - 1) / span if span > 0 else float("nan")


def study(work: Workspace, source: str, trials: int, workers: int, epochs: list[str]) -> None:
    storage = work.optuna_storage
    work.pipeline("download", "--source", source)
    work.pipeline("init-stores", "--storage", storage)
    share = -(-trials // workers)
    args = ["tune", "--arch", "mlp", "--n-trials", str(share), "--storage", storage]
    args += ["--epochs-range", *epochs, "--study-name", "long"]
    cpu, started = children_cpu(), time.perf_counter()
    work.pipeline(*args, workers=workers)
    wall, cpu = time.perf_counter() - started, children_cpu() - cpu
    found = optuna.load_study(study_name="long", storage=storage)
    done = sorted(
        (t for t in found.trials if t.state.is_finished() and t.datetime_complete),
        key=lambda t: t.datetime_complete,
    )
    print(f"{workers} worker(s), {len(done)} trials:", flush=True)
    for index, trial in enumerate(done, start=1):
        if index % 10 == 0 or index == 1:
            seconds = (trial.datetime_complete - trial.datetime_start).total_seconds()
            print(
                f"  trial {index:3d} (#{trial.number}, {trial.state.name.lower()}): "
                f"rss {trial.user_attrs.get(names.RSS_ATTR, '-')} MB, {seconds:.1f} s"
            )
    rss = [t.user_attrs[names.RSS_ATTR] for t in done[10:] if names.RSS_ATTR in t.user_attrs]
    spread = f"{min(rss)}-{max(rss)} MB (spread {max(rss) - min(rss)} MB" if rss else "n/a ("
    first, last = per_hour(done[:50]), per_hour(done[-50:])
    print(
        f"  after trial 10: rss {spread}; "
        f"complete trials only: pruned ones end before the record); trials/h first 50 "
        f"{first:.0f}, last 50 {last:.0f} (ratio {last / first:.2f}); whole study {wall:.0f} s "
        f"wall, {cpu:.0f} CPU-s, {3600 * len(done) / wall:.0f} trials/h",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default=str(REPO.parent / "shared" / "data" / "mnist"))
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--epochs-range", nargs=2, default=["1", "3"])
    options = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    for workers in options.workers:
        work = Workspace.create(None, f"bench-long-{workers}-")
        study(work, options.source, options.trials, workers, options.epochs_range)


if __name__ == "__main__":
    main()
