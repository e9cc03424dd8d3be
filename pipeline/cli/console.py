"""What the user sees: progress bars on stderr, one-screen summaries on stdout."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator

from rich.console import Console
from rich.filesize import decimal
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeRemainingColumn

from pipeline.config import DEFAULT_UI_HOST, DEFAULT_UI_PORT
from pipeline.errors import redact

stderr = Console(stderr=True)


@contextlib.contextmanager
def byte_progress() -> Iterator:
    """A callback (label, done, total, unit) that drives one bar per label."""
    bars = Progress(
        TextColumn("{task.description:<28}"),
        BarColumn(),
        TextColumn("{task.fields[amount]:>20}"),
        TimeRemainingColumn(),
        console=stderr,
        transient=False,
    )
    tasks: dict[str, TaskID] = {}

    def update(label: str, done: int, total: int | None, unit: str = "bytes") -> None:
        if unit == "bytes":
            amount = decimal(done) + (f" / {decimal(total)}" if total else "")
        else:
            amount = f"{done}/{total} {unit}"
        if label not in tasks:
            tasks[label] = bars.add_task(label, total=total, amount=amount)
        bars.update(tasks[label], completed=done, total=total, amount=amount)

    with bars:
        yield update


class LiveBars:
    """fitting.Progress as a live bar per epoch on stderr, and a line when each epoch ends."""

    def __init__(self, label: str = "") -> None:
        self.label = f"{label} " if label else ""
        self.bars = Progress(
            TextColumn("{task.description:<20}"),
            BarColumn(),
            TextColumn("{task.fields[amount]}"),
            TimeRemainingColumn(),
            console=stderr,
            transient=True,
        )
        self.task: TaskID | None = None
        self.epochs = self.steps = 0

    def start(self, epochs: int, steps: int, first_epoch: int) -> None:
        self.epochs, self.steps = epochs, steps
        self.bars.start()

    def batch(self, epoch: int, batch: int, logs: dict[str, float]) -> None:
        if self.task is None:
            description = f"{self.label}epoch {epoch}/{self.epochs}"
            self.task = self.bars.add_task(description, total=self.steps, amount="")
        if batch % 10 == 0 or batch == self.steps:
            amount = f"loss {logs['loss']:.4f} acc {logs['accuracy']:.4f}"
            self.bars.update(self.task, completed=batch, amount=amount)

    def epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        if self.task is not None:
            self.bars.remove_task(self.task)
            self.task = None
        values = "  ".join(f"{key} {value:.4f}" for key, value in logs.items())
        self.bars.console.print(f"{self.label}epoch {epoch}/{self.epochs}  {values}")

    def end(self) -> None:
        self.bars.stop()


class EpochLines:
    """fitting.Progress as one plain line per epoch on stderr (validation accuracy, time
    spent and left): for logs and pipes, where live bars would be noise."""

    def __init__(self, label: str = "") -> None:
        self.label = f"{label} " if label else ""
        self.started = time.monotonic()
        self.epochs = self.first_epoch = 0

    def start(self, epochs: int, steps: int, first_epoch: int) -> None:
        self.epochs, self.first_epoch, self.started = epochs, first_epoch, time.monotonic()

    def batch(self, epoch: int, batch: int, logs: dict[str, float]) -> None:
        pass

    def epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        elapsed = time.monotonic() - self.started
        left = elapsed / max(epoch - self.first_epoch, 1) * (self.epochs - epoch)
        accuracy = logs.get("val_accuracy", logs.get("accuracy", float("nan")))
        print(  # within 80 columns, for the longest label (train lstm baseline)
            f"{self.label}epoch {epoch}/{self.epochs}: val_accuracy {accuracy:.4f}, "
            f"{_duration(elapsed)} in, ~{_duration(left)} left",
            file=sys.stderr,
            flush=True,
        )

    def end(self) -> None:
        pass


def _whole_duration(seconds: float) -> str:
    """A duration --older-than takes, at most seconds: 5m for 330, 40s for 40.9."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{max(int(seconds), 1)}s"


def _duration(seconds: float) -> str:
    """90 -> 1m30s, 42.4 -> 42s, 7260 -> 2h01m."""
    minutes, seconds = divmod(round(seconds), 60)
    if minutes >= 60:
        return f"{minutes // 60}h{minutes % 60:02d}m"
    return f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"


def training_progress(enabled: bool = True, label: str = "") -> LiveBars | EpochLines | None:
    """Live bars on a terminal, a line per epoch otherwise (a log, a pipe); None: quiet."""
    if not enabled:
        return None
    return LiveBars(label) if stderr.is_terminal else EpochLines(label)


# MLflow 3's UI opens an experiment in its GenAI mode (traces; logged models as "agent
# versions"); this asks for its "Model training" mode: the runs table and the Models tab.
UI_MODE = "workflowType=machine_learning"


def ui_link(base: str, experiment_id: str, run_id: str | None = None) -> str:
    """The UI's page of an experiment's runs (or of one run), in its model-training mode."""
    page = f"/#/experiments/{experiment_id}/runs" + (f"/{run_id}" if run_id else "")
    return f"{base}{page}?{UI_MODE}"


def _ui_url() -> str:
    return f"http://{DEFAULT_UI_HOST}:{DEFAULT_UI_PORT}"


def print_train_summary(result) -> None:
    """One screen: what was trained, how well, how fast, and where to look."""
    config = result.config
    print(
        f"\nTrained {config.arch} ({config.preset} preset): {result.steps} steps, "
        f"{config.epochs} epochs in {result.seconds:.1f} s "
        f"({result.samples_per_second:,.0f} samples/s)\n"
        f"  val_accuracy {result.val_accuracy:.4f}   val_loss {result.val_loss:.4f}"
        + (
            f"   (early stopping: the model after epoch {result.best_epoch})\n"
            if result.best_epoch is not None
            else "\n"
        )
        + f"  run   {result.run_id}\n"
        f"  model {result.model_uri}\n"
        f"  UI    pipeline ui  then open\n"
        f"        {ui_link(_ui_url(), result.experiment_id, result.run_id)}"
    )


def print_eval_summary(result) -> None:
    """Accuracy, loss, the most-confused pairs, the champion decision and the UI path."""
    pairs = ", ".join(f"{true}→{pred} ({count})" for true, pred, count in result.confused_pairs)
    lines = [
        f"Evaluated {result.model_uri} ({result.arch}) on {result.test_set}",
        f"  test_accuracy {result.test_accuracy:.4f}   test_loss {result.test_loss:.4f}",
        f"  most confused (true→predicted): {pairs or 'none'}",
        *([f"  paired: {result.verdict}"] if result.verdict else []),
        f"  evaluate run {result.evaluation_run_id}",
    ]
    if result.registration:
        lines.append(f"  registry: {result.registration.describe()}")
    lines.append(
        f"  UI: pipeline ui  then open {ui_link(_ui_url(), result.experiment_id, result.run_id)}"
    )
    print("\n".join(lines))


def _params(params: dict) -> str:
    """Sampled params as people read them: learning_rate=0.00125 hidden_size=13 epochs=2."""
    return " ".join(
        f"{key}={value:.3g}" if isinstance(value, float) else f"{key}={value}"
        for key, value in params.items()
    )


def print_tune_start(config, arch: str) -> None:
    """The first line of one arch's `tune` (a TuneConfig), before the stores are opened."""
    print(
        f"tune {arch}: {config.n_trials} trial{'s' * (config.n_trials != 1)} of study "
        f"{config.study_for(arch)} in "
        f"{redact(config.storage)}; opening the study and the MLflow store"
    )


def print_status(line: str) -> None:
    print(line)


def print_trial(done) -> None:
    """The live line per finished trial (a tuning.trials.TrialDone), and one when the worker's
    first trial starts training (a TrialStarted)."""
    if not hasattr(done, "trial"):
        print(
            f"trial {done.number:>3}  {_params(done.params)}  training (up to {done.epochs} "
            "epochs); a line per finished trial follows"
        )
        return
    trial, best = done.trial, done.best
    params = _params(done.params)
    pruned = trial.state.name == "PRUNED"
    value = "failed" if trial.value is None and not pruned else f"{trial.value or 0:.4f}"
    if pruned:
        last = max(trial.intermediate_values, default=0)
        epoch = done.pruned_at or "?"
        value = f"pruned after epoch {epoch} ({trial.intermediate_values.get(last, 0):.4f})"
    best = f"best {best.value:.4f} (#{best.number})" if best is not None else "no best yet"
    print(f"trial {trial.number:>3}  {params}  {value}  {best}")


def print_download_summary(result, run_id: str | None) -> None:
    """What the download stage cached (or that the cache verified and nothing was fetched)."""
    if run_id is None:
        print(
            f"Verified MNIST already in {result.data_dir} (digest {result.digest}); nothing "
            f"fetched. Use --force to fetch again."
        )
        return
    kind = "official MNIST" if result.official else "NOT the official MNIST set"
    print(
        f"Cached {result.counts['train']} training and {result.counts['test']} test images "
        f"({kind}) in {result.data_dir}\n"
        f"dataset digest {result.digest}; MLflow run {run_id}"
    )


def print_study_summary(result) -> None:
    """One arch's study: trials, the best value and params, and the retrained best if any."""
    best = f"{result.best_value:.4f}" if result.best_value is not None else "n/a"
    print(
        f"Study {result.study_name}: {result.trials} trials ended; {result.pruning}; best "
        f"val_accuracy {best} with {_params(result.best_params) or 'none'}; MLflow parent run "
        f"{result.parent_run_id}"
    )
    if result.search:
        print(f"Search: {result.search}")
    print(f"Verdict: {result.verdict}")
    if result.not_retrained:
        print(result.not_retrained)
    if result.retrained:
        print_eval_summary(result.retrained)


def print_reap_summary(reaped, tidied: list) -> None:
    """Each run reaped (stdout) or left alone and why (stderr), then the count, and the
    checkpoint folders rid of a killed writer's partial files."""
    for folder in tidied:
        print(f"removed the partial checkpoint files a killed run left in {folder}")
    for run_id, why in reaped.skipped:
        print(f"left run {run_id} RUNNING: {why}", file=sys.stderr)
    for run_id, age in reaped.unbeating:
        print(
            f"left run {run_id} RUNNING: it never sent a heartbeat (started {_duration(age)} "
            f"ago), so it cannot be judged; if its process is gone: pipeline reap "
            f"--include-unbeating --older-than {_whole_duration(age)}",
            file=sys.stderr,
        )
    for run_id in reaped.killed:
        print(f"marked run {run_id} KILLED")
    count = len(reaped.killed)
    print(f"{count} stale run(s) marked KILLED" if count else "No stale runs.")


def print_main_summary(result) -> None:
    reused = sum(1 for _, _, was_reused in result.steps if was_reused)
    print(f"main run {result.run_id}: {len(result.steps)} steps, {reused} reused")


def print_report_summary(written, folder) -> None:
    """The report's table as the terminal shows it, and where it went."""
    from pipeline import reporting

    print(reporting.markdown_table(written.table.drop(columns=["run_id"])))
    print(f"\nWrote {folder / 'report.md'} and figures; report run {written.run_id}")
