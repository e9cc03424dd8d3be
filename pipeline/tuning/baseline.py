"""A study's baseline and its tuned model: the configurations, tags and names that make the
preset trial, `train`'s preset model and a retrained best one comparison, and the retrain that
trains both."""

from __future__ import annotations

from pathlib import Path

from pipeline import evaluation, tracking, training
from pipeline.config import TrainConfig, train_config
from pipeline.tracking import names
from pipeline.tune_config import TuneConfig
from pipeline.tuning.pruning import by_percent


def epochs_from_curve(tune: TuneConfig, arch: str) -> bool:
    """Whether a trial's epoch count comes from its learning curve instead of the sampler.

    Under a constant learning rate, epoch k of a long trial trains exactly as a k-epoch trial
    does. So every trial trains the top of the epoch range, and its epoch count is the epoch of
    its best validation accuracy within the range: each trial searches every epoch count, and
    pruning compares trials of one length. Sampled epochs would teach the sampler a false
    lesson: a pruned trial (stopped at epoch 3, whatever its epochs) counts below every complete
    one, so short trials, which finish before the pruner's first verdict, would look best.
    A decaying or searched schedule ties a trial to its length: there the sampler picks it.
    """
    return not by_percent(tune, arch)


def preset_config(tune: TuneConfig, arch: str) -> TrainConfig:
    """What a study's preset trial trains: the start preset as `train` makes it (its own epochs
    as the ceiling, early stopping where the study's trials choose epochs by their curve), with
    the study's seed and validation share. The baseline of the study's every claim."""
    return tuned_config(tune, arch, {})


def baseline_tags(tune: TuneConfig, arch: str) -> dict[str, str]:
    """The tags that tell a tuned train run which model its test gain is over: its study's
    baseline (preset_config)."""
    baseline = preset_config(tune, arch)
    return {
        names.BASELINE_CONFIG_HASH: tracking.config_hash(baseline.params()),
        names.BASELINE_PRESET: baseline.preset,
    }


def tuned_config(tune: TuneConfig, arch: str, params: dict) -> TrainConfig:
    """What --retrain-best and `main --tune` train: the start preset with the best's values,
    the study's seed and validation share, and its trials' epoch rule (so the retrained model
    is the trial's)."""
    return train_config(
        arch,
        tune.start_from,
        **params,
        seed=tune.seed,
        validation_fraction=tune.validation_fraction,
        early_stopping=epochs_from_curve(tune, arch),
    )


def tuned_label(tune: TuneConfig, arch: str) -> str:
    """A tuned run's name after its arch: the study that chose it and the preset it built on."""
    return f"tuned-by-{tune.study_for(arch)}-from-{tune.start_from}"


def retrain(
    tune: TuneConfig,
    arch: str,
    params: dict,
    data_dir: Path,
    checkpoint_dir: Path,
    digest: str,
    store: tracking.Store,
) -> evaluation.EvalResult:
    """Train the best configuration (the start preset with the best's values) on the training
    split, then evaluate and register it. First, unless a model of it is evaluated on this data
    already, the study's baseline (its preset trial as `train` makes it) is trained and
    evaluated too, so that the tuned model's test gain is over the model the study compared it
    with."""
    baseline = preset_config(tune, arch)
    if tracking.newest_evaluation_of(tracking.config_hash(baseline.params()), digest) is None:
        trained = training.train(baseline, data_dir, checkpoint_dir, store=store)
        evaluation.evaluate_run(data_dir, run_id=trained.run_id, store=store)
    config = tuned_config(tune, arch, params)
    tags = {names.TUNED_FROM: tune.study_for(arch), **baseline_tags(tune, arch)}
    label = tuned_label(tune, arch)
    result = training.train(config, data_dir, checkpoint_dir, tags=tags, label=label, store=store)
    return evaluation.evaluate_run(data_dir, run_id=result.run_id, store=store)
