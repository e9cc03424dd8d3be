"""What a training run records besides its step metrics: its dataset inputs, its logged model
(linked to the metrics it was measured with) and its learning-curve figure."""

from __future__ import annotations

from pathlib import Path

from pipeline import data, figures, tracking
from pipeline.config import SERVING_CONTRACT, TrainConfig, architecture
from pipeline.tracking import names


def log_inputs(splits: data.Splits, data_dir: Path) -> None:
    """The train and validation parts as the active run's dataset inputs."""
    for name, context, x, y in (
        (names.DATASET_TRAIN, "training", splits.x_train, splits.y_train),
        (names.DATASET_VALIDATION, "validation", splits.x_val, splits.y_val),
    ):
        tracking.log_dataset(x, y, name, splits.part_digest(context), data_dir, context)


def _datasets(splits: data.Splits) -> dict[str, tuple[str, str]]:
    """Which dataset each metric of a logged model was measured on, by key prefix."""
    return {
        "train_": (names.DATASET_TRAIN, splits.part_digest("training")),
        "val_": (names.DATASET_VALIDATION, splits.part_digest("validation")),
    }


def log_model(
    run: tracking.Run, model, config: TrainConfig, name: str, step: int, epoch_metrics, splits
) -> str:
    """Log the model as it is after `step` steps, linked to that epoch's train and validation
    metrics (epoch_metrics, as the step metric sink recorded them) and their datasets; its
    models:/ URI."""
    from pipeline import models

    values = {metric.key: metric.value for metric in epoch_metrics}
    accuracy = values.get(names.VAL_ACCURACY)
    description = (
        f"{name}: {architecture(config.arch).summary} of size {config.hidden_size} after "
        f"{step} training steps "
        f"(batch {config.batch_size}) on {names.DATASET_TRAIN}"
        + (
            f"; validation accuracy {accuracy:.4f} on {names.DATASET_VALIDATION}"
            if accuracy is not None
            else ""
        )
        + f". {SERVING_CONTRACT}"
    )
    model_id = tracking.log_model(models.serving_model(model), name, step, description)
    tracking.link_metrics(run.run_id, model_id, epoch_metrics, _datasets(splits))
    return f"models:/{model_id}"


def log_curves(run: tracking.Run) -> None:
    """The learning-curve figure of the whole run (resumes included)."""
    curves = {
        key: tracking.metric_history(run.run_id, key)
        for key in (names.BATCH_LOSS, names.BATCH_ACCURACY, names.VAL_LOSS, names.VAL_ACCURACY)
    }
    figure = figures.learning_curves({"run": curves})
    run.log_figure(figure, "learning_curves.png")
    figures.close(figure)
