"""train(): seed, compile, fit with validation data, checkpoints and tracking callbacks."""

from __future__ import annotations

import json
import math
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import mlflow
import numpy as np

from pipeline import data, figures, models, step_logging, tracking
from pipeline.backend import keras
from pipeline.config import PipelineError, TrainConfig
from pipeline.console import epoch_progress

WEIGHTS_FILE = "weights.npz"
STATE_FILE = "state.json"
SPOOL_FILE = "unsent_metrics.jsonl"


@dataclass(frozen=True)
class TrainResult:
    """What one train run produced."""

    run_id: str
    experiment_id: str
    config: TrainConfig
    val_accuracy: float
    val_loss: float
    seconds: float
    samples_per_second: float
    steps: int
    model_uri: str


class StepLimit(keras.callbacks.Callback):
    """Stops after max_steps batches in all (checked synchronously before each batch)."""

    def __init__(self, first_step: int, max_steps: int | None) -> None:
        super().__init__()
        self.step, self.max_steps = first_step, max_steps

    def on_train_batch_begin(self, batch: int, logs=None) -> None:
        self.step += 1
        if self.max_steps is not None and self.step >= self.max_steps:
            self.model.stop_training = True  # this batch is the last one


class EpochCheckpoint(keras.callbacks.Callback):
    """Saves weights, optimizer state and progress after every epoch, atomically.

    The arrays are copied on the training thread (milliseconds) and written by a background
    thread, so a checkpoint costs the training loop almost nothing.
    """

    def __init__(self, folder: Path, state: dict, logger: step_logging.StepMetricLogger) -> None:
        super().__init__()
        self.folder, self.state, self.logger = folder, state, logger
        self.writer = ThreadPoolExecutor(max_workers=1)
        self.pending: Future | None = None
        self.completed_epochs = state["epoch"]

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        if tracking.interrupt_pending():  # a partial epoch: the interrupt path saves it
            return
        self.completed_epochs = epoch + 1
        if self.logger.non_finite_step is None:  # never keep a diverged model
            self.save()

    def on_train_end(self, logs=None) -> None:
        self.wait()

    def save(self) -> None:
        """Checkpoint the model as it is now, counting the epochs completed so far."""
        self.wait()
        arrays = {f"w{i}": v.numpy() for i, v in enumerate(self.model.weights)}
        arrays |= {f"o{i}": v.numpy() for i, v in enumerate(self.model.optimizer.variables)}
        state = {**self.state, "epoch": self.completed_epochs, "step": self.logger.next_step}
        self.pending = self.writer.submit(self._write, arrays, state)

    def wait(self) -> None:
        if self.pending is not None:
            self.pending.result()
            self.pending = None

    def _write(self, arrays: dict, state: dict) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)

        def write_arrays(path: Path) -> None:
            with path.open("wb") as handle:
                np.savez(handle, **arrays)

        data.atomic_write(self.folder / WEIGHTS_FILE, write_arrays)
        data.atomic_write(
            self.folder / STATE_FILE, lambda path: path.write_text(json.dumps(state))
        )


def restore(config: TrainConfig, folder: Path, train_size: int) -> keras.Model:
    """A compiled model with the weights and optimizer state of a checkpoint."""
    model = new_model(config, train_size)
    model.optimizer.build(model.trainable_variables)
    with np.load(folder / WEIGHTS_FILE) as arrays:
        for i, variable in enumerate(model.weights):
            variable.assign(arrays[f"w{i}"])
        for i, variable in enumerate(model.optimizer.variables):
            variable.assign(arrays[f"o{i}"])
    return model


def steps_per_epoch(config: TrainConfig, train_size: int) -> int:
    return math.ceil(train_size / config.batch_size)


def total_steps(config: TrainConfig, train_size: int) -> int:
    """Optimizer steps the whole run takes (what a learning-rate schedule spans)."""
    return config.max_steps or steps_per_epoch(config, train_size) * config.epochs


def new_model(config: TrainConfig, train_size: int) -> keras.Model:
    """The config's architecture, compiled, with fresh weights."""
    model = models.build_model(config)
    return models.compile_model(model, config, total_steps(config, train_size))


def fit_epochs_to_steps(config: TrainConfig, train_size: int) -> TrainConfig:
    """With a step budget, the epoch count is whatever the budget needs on this data."""
    if config.max_steps is None:
        return config
    return replace(
        config, epochs=math.ceil(config.max_steps / steps_per_epoch(config, train_size))
    )


def load_state(checkpoint_dir: Path, run_id: str) -> dict:
    """The saved progress of an interrupted run, for --resume."""
    path = Path(checkpoint_dir) / run_id / STATE_FILE
    if not path.is_file() or not (path.parent / WEIGHTS_FILE).is_file():
        raise PipelineError(f"--resume {run_id}: no checkpoint in {path.parent}")
    return json.loads(path.read_text())


def fit(
    config: TrainConfig,
    splits: data.Splits,
    run_id: str,
    checkpoint_dir: Path | None = None,
    state: dict | None = None,
    show_progress: bool = False,
    extra_callbacks: tuple = (),
) -> tuple[keras.Model, step_logging.StepMetricLogger, float]:
    """Fit (or continue, given a checkpoint state) inside the active run.

    Returns the model, the metric logger (steps done, NaN step) and the seconds fit took.
    """
    keras.utils.set_random_seed(config.seed + (state["epoch"] if state else 0))
    if state:
        model = restore(config, Path(checkpoint_dir) / run_id, len(splits.y_train))
    else:
        model = new_model(config, len(splits.y_train))
        state = {"run_id": run_id, "config": config.params(), "digest": splits.digest}
        state.update(epoch=0, step=0)
    train_size = len(splits.y_train)
    spool = Path(checkpoint_dir) / run_id / SPOOL_FILE if checkpoint_dir is not None else None
    logger = step_logging.StepMetricLogger(
        run_id, state["step"], config.batch_size, train_size, spool
    )
    callbacks = [logger]
    checkpoint = None
    if checkpoint_dir is not None:
        checkpoint = EpochCheckpoint(Path(checkpoint_dir) / run_id, state, logger)
        callbacks.append(checkpoint)
    if config.max_steps is not None:  # a synchronous per-batch callback costs time: only if needed
        callbacks.append(StepLimit(state["step"], config.max_steps))
    started = time.perf_counter()
    with epoch_progress(show_progress, steps_per_epoch(config, train_size), config.epochs) as bar:
        try:
            with tracking.stop_gracefully(lambda: setattr(model, "stop_training", True)):
                model.fit(
                    splits.x_train.astype(np.float32),
                    splits.y_train,
                    batch_size=config.batch_size,
                    epochs=config.epochs,
                    initial_epoch=state["epoch"],
                    validation_data=(splits.x_val.astype(np.float32), splits.y_val),
                    shuffle=True,
                    verbose=0,
                    callbacks=callbacks + list(extra_callbacks) + bar,
                )
            if tracking.interrupt_pending():  # Keras stopped after the batch the signal hit
                raise tracking.RunInterrupted(tracking.interrupt_pending())
        except KeyboardInterrupt:
            time.sleep(0.05)  # let Keras' callback workers record the batch in flight
            logger.flush_partial()
            if checkpoint is not None:
                checkpoint.save()
                checkpoint.wait()
            raise
        finally:
            logger.wait()
    return model, logger, time.perf_counter() - started


def _log_outputs(run_id: str, model: keras.Model, splits: data.Splits) -> str:
    """The serving model and the learning-curve figure of the whole run (resumes included)."""
    model_uri = tracking.log_model(
        models.serving_model(model), splits.x_val[:4].astype(np.float32)
    )
    curves = {
        key: tracking.metric_history(run_id, key)
        for key in ("train_loss", "train_accuracy", "val_loss", "val_accuracy")
    }
    figure = figures.learning_curves({"run": curves})
    mlflow.log_figure(figure, "learning_curves.png")
    figures.close(figure)
    return model_uri


def _resume_state(checkpoint_dir: Path, run_id: str, digest: str, data_dir: Path) -> dict:
    """The checkpoint state of the run to resume, checked against the data at hand."""
    state = load_state(checkpoint_dir, run_id)
    if state["digest"] != digest:
        raise PipelineError(
            f"--resume {run_id}: the run trained on data {state['digest']}, but "
            f"{data_dir} holds {digest}"
        )
    return state


def train(
    config: TrainConfig,
    data_dir: Path,
    checkpoint_dir: Path,
    resume: str | None = None,
    show_progress: bool = True,
) -> TrainResult:
    """Train one model in one MLflow run (or continue an interrupted run with resume=RUN_ID)."""
    dataset = data.load_dataset(data_dir)
    state = None
    if resume:
        state = _resume_state(checkpoint_dir, resume, dataset.digest, data_dir)
        config = TrainConfig(**state["config"])
    splits = data.split_train_validation(dataset, config.validation_fraction, config.seed)
    config = fit_epochs_to_steps(config, len(splits.y_train))
    tracking.setup()
    if resume:
        tracking.check_resumable(resume)
    params = config.params()
    tags = {
        tracking.ARCH_TAG: config.arch,
        tracking.DIGEST_TAG: dataset.digest,
        tracking.CONFIG_HASH_TAG: tracking.config_hash(params),
    }
    run_name = f"{config.arch}-{config.preset}"
    with tracking.run("train", run_name=run_name, tags=tags, run_id=resume) as active:
        run_id = active.info.run_id
        if not resume:
            mlflow.log_params(params)
            tracking.log_dataset(data_dir, dataset.digest, context="training")
        else:  # metrics a lost tracking server did not take
            step_logging.replay_spool(run_id, Path(checkpoint_dir) / run_id / SPOOL_FILE)
        model, logger, seconds = fit(config, splits, run_id, checkpoint_dir, state, show_progress)
        if logger.failure is not None:
            raise PipelineError(
                f"lost the tracking store ({logger.failure}); {logger.unsent} step metrics kept "
                f"in {checkpoint_dir}/{run_id}/{SPOOL_FILE} with the checkpoint; when the store "
                f"is back: pipeline train --resume {run_id}"
            )
        if logger.non_finite_step is not None:
            raise PipelineError(
                f"loss became NaN at step {logger.non_finite_step}; "
                f"try a smaller --learning-rate (was {config.learning_rate})"
            )
        mlflow.log_metric("train_seconds", seconds)
        model_uri = _log_outputs(run_id, model, splits)
        final = tracking.latest_metrics(run_id)
        trained = (logger.next_step - (state["step"] if state else 0)) * config.batch_size
        return TrainResult(
            run_id=run_id,
            experiment_id=active.info.experiment_id,
            config=config,
            val_accuracy=final.get("val_accuracy", float("nan")),
            val_loss=final.get("val_loss", float("nan")),
            seconds=seconds,
            samples_per_second=min(trained, len(splits.y_train) * config.epochs) / seconds,
            steps=logger.next_step,
            model_uri=model_uri,
        )
