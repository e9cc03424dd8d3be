"""The main job: download -> (tune) -> train -> evaluate each arch -> report, with step caching."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field

from pipeline import (
    data,
    downloading,
    evaluation,
    fetch,
    fitting,
    paired,
    provenance,
    reporting,
    tracking,
    training,
)
from pipeline.config import TrainConfig, train_config
from pipeline.errors import PipelineError, redact
from pipeline.tracking import names
from pipeline.tune_config import MainConfig, TuneConfig
from pipeline.tuning import study
from pipeline.tuning.baseline import baseline_tags, preset_config, tuned_config, tuned_label
from pipeline.tuning.opening import StudyMismatch


@dataclass
class MainResult:
    """Each step's run and whether it was reused from an earlier identical step."""

    run_id: str = ""
    steps: list[tuple[str, str, bool]] = field(default_factory=list)  # (step, run id, reused)
    test_accuracy: dict[str, float] = field(default_factory=dict)  # arch -> its evaluate's

    def add(self, main: tracking.Run, step: str, run_id: str, reused: bool) -> None:
        """Record a step, on the main run too, so the UI shows which run each step used."""
        self.steps.append((step, run_id, reused))
        main.set_tags({names.step(step): run_id + " (reused)" * reused})


def cache_key(step: str, params: dict, data_digest: str) -> str:
    """Same step, parameters, code and data -> same key."""
    parts = [step, params, provenance.code_hash(), data_digest]
    blob = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass
class _Job:
    config: MainConfig
    main: tracking.Run
    result: MainResult
    digest: str
    say: Callable[[str], None]
    progress: Callable[[str], fitting.Progress | None]
    store: tracking.Store

    def step(self, name: str, key: str, work: Callable[[dict[str, str]], str]) -> str:
        """Reuse a finished identical step, or run it with the cache key on its run."""
        cached = tracking.find_finished(names.CACHE_KEY, key)
        if cached is not None:
            self.say(f"{name}: reusing run {cached} (same parameters, code and data)")
            self.result.add(self.main, name, cached, True)
            return cached
        run_id = work({names.CACHE_KEY: key})
        self.say(f"{name}: run {run_id}")
        self.result.add(self.main, name, run_id, False)
        return run_id


def run_main(
    config: MainConfig,
    store: tracking.Store,
    say: Callable[[str], None] = print,
    progress: Callable[[str], fitting.Progress | None] = lambda label: None,
) -> MainResult:
    """Run every step as a child of one parent run; identical finished steps are reused.

    progress(label) shows a training's progress (label: "train mlp", say); every run goes to
    store."""
    store.open()
    result = MainResult()
    tags = {names.PRESET: config.preset, names.TUNE: str(config.tune).lower()}
    with tracking.run("main", f"main-{config.preset}", tags) as main:
        result.run_id = main.run_id
        downloaded = fetch.download(config.data)
        job = _Job(config, main, result, downloaded.digest, say, progress, store)
        key = cache_key("download", {names.SOURCE_PARAM: config.data.source}, downloaded.digest)
        previous = tracking.find_finished(names.CACHE_KEY, key) if downloaded.skipped else None
        if previous is not None:
            say(f"download: verified data already in {config.data.data_dir}; reusing")
            result.add(main, "download", previous, True)
        else:
            recorded = downloading.record(downloaded, {names.CACHE_KEY: key}, store=store)
            result.add(main, "download", recorded, False)
            counts = downloaded.counts
            say(
                f"download: {counts['train']} training and {counts['test']} test images in "
                f"{config.data.data_dir}; run {recorded}"
            )
        for arch in config.arches():
            _arch_steps(job, arch)
        report = reporting.write_report(config.report_dir, store=store)
        result.add(main, "report", report.run_id, False)
        say(f"report: {config.report_dir / 'report.md'}")
        reused = sum(1 for _, _, was_reused in result.steps if was_reused)
        main.describe(
            f"Main job ({config.preset} preset{', tuned first' if config.tune else ''}): "
            f"{len(result.steps) - reused} steps as child runs, {reused} reused from identical "
            f"earlier runs (its pipeline.step.* tags name each step's run). Test accuracy: "
            + ", ".join(f"{arch} {value:.4f}" for arch, value in result.test_accuracy.items())
            + f". Report: {config.report_dir / 'report.md'}."
        )
    return result


def _arch_steps(job: _Job, arch: str) -> None:
    config = job.config
    # (step name, config, tags, run label) of each model to train and evaluate, in order
    models: list[tuple[str, TrainConfig, dict[str, str], str | None]] = [
        (arch, train_config(arch, config.preset), {}, None)
    ]
    if config.tune:
        tune_config = TuneConfig(
            arch=arch,
            n_trials=config.n_trials,
            storage=config.storage,
            data_name=data.data_name(config.data.data_dir),
        )
        key = cache_key("tune", {"arch": arch, "n_trials": config.n_trials}, job.digest)
        study_run = job.step(
            f"tune {arch}",
            key,
            lambda tags: _tune(job, tune_config, arch, tags),
        )
        found = tracking.run_tags(study_run)
        gains = tracking.latest_metrics(study_run)
        if paired.significant(
            gains.get(names.VAL_GAIN, 0.0), gains.get(names.VAL_GAIN_P_VALUE, 1.0)
        ):
            best = {
                "learning_rate": float(found[names.best("learning_rate")]),
                "hidden_size": int(found[names.best("hidden_size")]),
                "epochs": int(found[names.best("epochs")]),
            }
            tuned = {
                names.TUNED_FROM: tune_config.study_for(arch),
                **baseline_tags(tune_config, arch),
            }
            # The study's baseline first (the model its claims are over), then the winner.
            models = [
                (f"{arch} baseline", preset_config(tune_config, arch), {}, None),
                (
                    arch,
                    tuned_config(tune_config, arch, best),
                    tuned,
                    tuned_label(tune_config, arch),
                ),
            ]
        else:
            job.say(
                f"tune {arch}: {found.get(names.VERDICT, 'no verdict')}; so no tuned model: "
                f"training the {config.preset} preset"
            )
    for step, train, tags, label in models:
        accuracy = _train_and_evaluate(job, step, train, tags, label)
    job.main.log_metrics({f"{arch}_test_accuracy": accuracy})
    job.result.test_accuracy[arch] = accuracy


def _tune(job: _Job, tune_config: TuneConfig, arch: str, tags: dict[str, str]) -> str:
    """The study's run id; a study in --storage made otherwise than `main --tune` makes its own
    is one line saying what main can do about it."""
    config = job.config
    try:
        return study.tune_arch(
            tune_config,
            arch,
            config.data.data_dir,
            config.checkpoint_dir,
            tags=tags,
            store=job.store,
        ).parent_run_id
    except StudyMismatch as mismatch:
        raise PipelineError(
            f"study {mismatch.study_name} in --storage {redact(config.storage)} was made with "
            f"{mismatch.option} {mismatch.made}, and `main --tune` tunes with {mismatch.given}: "
            f"give main another --storage, or go on with that study with `pipeline tune "
            f"{mismatch.option} {mismatch.made}`"
        ) from None


def _train_and_evaluate(
    job: _Job, step: str, train: TrainConfig, tuned: dict[str, str], label: str | None
) -> float:
    """The train and evaluate steps of one model; its test accuracy."""
    config, data_dir = job.config, job.config.data.data_dir
    # A tuned run is its own step even when the study's best is a preset another run trained:
    # the report then shows a "tuned best" row, and the run says which study chose it.
    key = cache_key("train", {**train.params(), **tuned}, job.digest)
    trained = job.step(
        f"train {step}",
        key,
        lambda tags: (
            training.train(
                train,
                data_dir,
                config.checkpoint_dir,
                progress=job.progress(f"train {step}"),
                tags={**tags, **tuned},
                label=label,
                store=job.store,
            ).run_id
        ),
    )
    key = cache_key("evaluate", {"run": trained}, job.digest)
    evaluated = job.step(
        f"evaluate {step}",
        key,
        lambda tags: (
            evaluation.evaluate_run(
                data_dir, run_id=trained, tags=tags, store=job.store
            ).evaluation_run_id
        ),
    )
    return tracking.latest_metrics(evaluated)[names.TEST_ACCURACY]  # reused steps too
