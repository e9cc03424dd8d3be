"""The main job: download -> (tune) -> train both -> evaluate both -> report, with step caching."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import mlflow

from pipeline import evaluation, fetch, reporting, tracking, training, tuning
from pipeline.config import (
    ARCHITECTURES,
    PRESETS,
    DataConfig,
    PipelineError,
    TuneConfig,
    check_choice,
    train_config,
)

CACHE_TAG = "pipeline.cache_key"


@dataclass(frozen=True)
class MainConfig:
    """What the main job runs."""

    data: DataConfig
    preset: str = "default"
    tune: bool = False
    n_trials: int = 10
    storage: str = "sqlite:///optuna.db"
    checkpoint_dir: Path = Path("checkpoints")
    report_dir: Path = Path("reports")
    archs: tuple[str, ...] = ARCHITECTURES

    def __post_init__(self) -> None:
        check_choice("--preset", self.preset, PRESETS)
        for arch in self.archs:
            check_choice("--arch", arch, ARCHITECTURES)
        if self.n_trials < 1:
            raise PipelineError(f"--n-trials must be at least 1 (got {self.n_trials})")


@dataclass
class MainResult:
    """Each step's run and whether it was reused from an earlier identical step."""

    run_id: str = ""
    steps: list[tuple[str, str, bool]] = field(default_factory=list)  # (step, run id, reused)

    def add(self, step: str, run_id: str, reused: bool) -> None:
        """Record a step, on the main run too, so the UI shows which run each step used."""
        self.steps.append((step, run_id, reused))
        mlflow.set_tag(f"pipeline.step.{step.replace(' ', '_')}", run_id + " (reused)" * reused)


def code_version() -> str:
    """A hash of the package's source: a change in any module invalidates every cached step."""
    digest = hashlib.sha256()
    for path in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()[:12]


def cache_key(step: str, params: dict, data_digest: str) -> str:
    """Same step, parameters, code and data -> same key."""
    blob = json.dumps([step, params, code_version(), data_digest], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def find_finished(key: str) -> mlflow.entities.Run | None:
    """The newest FINISHED run carrying the cache key, if any."""
    found = mlflow.search_runs(
        filter_string=f"tags.`{CACHE_TAG}` = '{key}' and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
        output_format="list",
        search_all_experiments=True,
    )
    return found[0] if found else None


def _step(result: MainResult, name: str, stage: str, key: str, work: Callable[[], str], say):
    """Reuse a finished identical step, or run it with the cache key on its run."""
    cached = find_finished(key)
    if cached is not None:
        say(f"{name}: reusing run {cached.info.run_id} (same parameters, code and data)")
        result.add(name, cached.info.run_id, True)
        return cached
    with tracking.tag_runs(stage, {CACHE_TAG: key}):
        run_id = work()
    say(f"{name}: run {run_id}")
    result.add(name, run_id, False)
    return mlflow.get_run(run_id)


def run_main(config: MainConfig, say: Callable[[str], None] = print) -> MainResult:
    """Run every step as a child of one parent run; identical finished steps are reused."""
    tracking.setup()
    result = MainResult()
    tags = {"pipeline.preset": config.preset, "pipeline.tune": str(config.tune).lower()}
    with tracking.run("main", f"main-{config.preset}", tags) as parent:
        result.run_id = parent.info.run_id
        downloaded = fetch.download(config.data)
        digest = downloaded.digest
        source_key = cache_key("download", {"source": config.data.source}, digest)
        previous = find_finished(source_key) if downloaded.skipped else None
        if previous is not None:
            say(f"download: verified data already in {config.data.data_dir}; reusing")
            result.add("download", previous.info.run_id, True)
        else:
            with tracking.tag_runs("download", {CACHE_TAG: source_key}):
                result.add("download", tracking.log_download_run(downloaded), False)
        for arch in config.archs:
            _arch_steps(config, arch, digest, result, say)
        report = reporting.write_report(config.report_dir)
        result.add("report", report.run_id, False)
        say(f"report: {config.report_dir / 'report.md'}")
    return result


def _arch_steps(config: MainConfig, arch: str, digest: str, result: MainResult, say) -> None:
    data_dir, overrides = config.data.data_dir, {}
    if config.tune:
        tune_config = TuneConfig(arch=arch, n_trials=config.n_trials, storage=config.storage)
        key = cache_key("tune", {"arch": arch, "n_trials": config.n_trials}, digest)
        run = _step(result, f"tune {arch}", "tune", key, lambda: tuning.tune_arch(
            tune_config, arch, data_dir, config.checkpoint_dir).parent_run_id, say)  # fmt: skip
        tags = run.data.tags
        overrides = {
            "learning_rate": float(tags["best.learning_rate"]),
            "hidden_size": int(tags["best.hidden_size"]),
            "epochs": int(tags["best.epochs"]),
        }
    train = train_config(arch, config.preset if not config.tune else "default", **overrides)
    key = cache_key("train", train.params(), digest)

    def do_train() -> str:
        scope = {"pipeline.tuned_from": tune_config.study_for(arch)} if config.tune else {}
        with tracking.tag_runs("train", scope):
            return training.train(
                train, data_dir, config.checkpoint_dir, show_progress=False
            ).run_id

    trained = _step(result, f"train {arch}", "train", key, do_train, say)
    key = cache_key("evaluate", {"run": trained.info.run_id}, digest)

    def do_evaluate() -> str:
        return evaluation.evaluate_run(data_dir, run_id=trained.info.run_id).evaluation_run_id

    _step(result, f"evaluate {arch}", "evaluate", key, do_evaluate, say)
