"""Test-set metrics, confusion matrix, per-class report and figures; `evaluate_run` logs them."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline import data, figures, paired, tracking
from pipeline.config import NUM_CLASSES, is_preset_run
from pipeline.errors import PipelineError
from pipeline.tracking import names

CORRECT_FILE = "test_correct.txt"  # which test images the model got right (paired.pack)


@dataclass(frozen=True)
class EvalResult:
    """What evaluating one model on the test set found and decided."""

    run_id: str
    experiment_id: str
    model_uri: str
    arch: str
    test_accuracy: float
    test_loss: float
    confused_pairs: list[tuple[int, int, int]]  # (true, predicted, count)
    registration: tracking.Registration | None
    evaluation_run_id: str = ""
    test_set: str = ""
    verdict: str = ""  # a tuned model against its study's baseline, on the same test images


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """Counts with true digits as rows and predicted digits as columns."""
    matrix = np.zeros((NUM_CLASSES, NUM_CLASSES), dtype=np.int64)
    np.add.at(matrix, (labels.astype(int), predicted.astype(int)), 1)
    return matrix


def per_class_report(matrix: np.ndarray) -> pd.DataFrame:
    """Precision, recall, F1 and support per digit."""
    true_positive = np.diag(matrix).astype(float)
    predicted = matrix.sum(axis=0).astype(float)
    support = matrix.sum(axis=1).astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, true_positive / predicted, 0.0)
        recall = np.where(support > 0, true_positive / support, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    frame = pd.DataFrame(
        {"precision": precision, "recall": recall, "f1": f1, "support": support.astype(int)}
    )
    frame.index.name = "digit"
    return frame


def most_confused(matrix: np.ndarray, count: int = 3) -> list[tuple[int, int, int]]:
    """The off-diagonal cells with the most images: (true, predicted, images)."""
    off_diagonal = matrix.copy()
    np.fill_diagonal(off_diagonal, 0)
    order = np.argsort(off_diagonal, axis=None)[::-1][:count]
    pairs = [(int(i), int(j)) for i, j in zip(*np.unravel_index(order, matrix.shape), strict=True)]
    return [(i, j, int(matrix[i, j])) for i, j in pairs if matrix[i, j] > 0]


def cross_entropy(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """Mean negative log-probability of the true class."""
    picked = probabilities[np.arange(len(labels)), labels.astype(int)]
    return float(-np.mean(np.log(np.clip(picked, 1e-12, 1.0))))


def worst_misclassified(probabilities: np.ndarray, labels: np.ndarray, count: int = 16):
    """Indices of wrong predictions, most confident first."""
    predicted = probabilities.argmax(axis=1)
    wrong = np.flatnonzero(predicted != labels)
    confidence = probabilities[wrong, predicted[wrong]]
    return wrong[np.argsort(confidence)[::-1][:count]]


def summary_markdown(result_numbers: dict, report: pd.DataFrame, pairs) -> str:
    """A short markdown summary of one evaluation."""
    lines = [
        f"# Evaluation of {result_numbers[names.MODEL_URI_PARAM]}",
        "",
        f"- test accuracy: **{result_numbers[names.TEST_ACCURACY]:.4f}**",
        f"- test loss: {result_numbers[names.TEST_LOSS]:.4f}",
        f"- test set: {result_numbers['test_set']}",
        *([f"- paired: {result_numbers['verdict']}"] if result_numbers.get("verdict") else []),
        "- most confused (true → predicted, images): "
        + (", ".join(f"{i} → {j} ({n})" for i, j, n in pairs) or "none"),
        "",
        "| digit | precision | recall | F1 | support |",
        "| --- | --- | --- | --- | --- |",
    ]
    for digit, row in report.iterrows():
        lines.append(
            f"| {digit} | {row.precision:.4f} | {row.recall:.4f} | {row.f1:.4f} | "
            f"{int(row.support)} |"
        )
    return "\n".join(lines) + "\n"


def _write_artifacts(folder: Path, matrix, report, probabilities, dataset, summary) -> None:
    frame = pd.DataFrame(matrix, index=range(NUM_CLASSES), columns=range(NUM_CLASSES))
    frame.index.name, frame.columns.name = "true", "predicted"
    frame.to_csv(folder / "confusion_matrix.csv")
    report.to_csv(folder / "per_class.csv", float_format="%.6f")
    (folder / "summary.md").write_text(summary)
    figure = figures.confusion_matrix(matrix)
    figure.savefig(folder / "confusion_matrix.png")
    figures.close(figure)
    worst = worst_misclassified(probabilities, dataset.y_test)
    figure = figures.digit_grid(
        dataset.x_test[worst],
        dataset.y_test[worst],
        probabilities[worst].argmax(axis=1),
        probabilities[worst].max(axis=1),
    )
    figure.savefig(folder / "worst_misclassified.png")
    figures.close(figure)


def _test_set(digest: str) -> tuple[str, str]:
    """Name and digest of the test set: the evaluate run's input, its metrics' dataset."""
    return names.DATASET_TEST, data.part_digest(digest, "test")


def _against_baseline(
    trained_tags: dict[str, str], digest: str, correct: np.ndarray
) -> tuple[paired.Comparison | None, str]:
    """A tuned model's test results against its study's baseline (the preset trial's config as
    `train` makes it: the newest evaluated model of that config hash) on the same test images:
    (comparison, sentence); (None, why) when there is none."""
    config_hash = trained_tags.get(names.BASELINE_CONFIG_HASH)
    preset = trained_tags.get(names.BASELINE_PRESET, "start")
    baseline = tracking.newest_evaluation_of(config_hash, digest) if config_hash else None
    text = tracking.read_text(baseline, CORRECT_FILE) if baseline else None
    if text is None:
        return None, (
            f"no evaluated model of the study's baseline (the {preset} preset as its trial 0 "
            "trained it) on these test images to compare with"
        )
    who = (
        f"its study's baseline, the {preset} preset as trial 0 trained it (evaluate run "
        f"{baseline})"
    )
    try:
        answers = paired.unpack(text)
    except PipelineError as damaged:
        return None, f"the per-image record of {who} is damaged ({damaged}): no comparison"
    if len(answers) != len(correct):
        return None, f"{who} was tested on {len(answers)} images, not these {len(correct)}"
    comparison = paired.compare(correct, answers)
    return comparison, comparison.verdict("the tuned model", who) + " on the test set"


def _record(
    evaluation_run: tracking.Run,
    target,
    numbers: dict,
    folder: Path,
    digest: str,
    register: bool,
) -> tracking.Registration | None:
    """Log the evaluation on its own run and on the train run; register and gate the champion."""
    test_metrics = {key: numbers[key] for key in (names.TEST_ACCURACY, names.TEST_LOSS)}
    comparison = numbers.get("comparison")
    if comparison is not None:  # the tuned model's gain: shown beside its test accuracy
        test_metrics.update(names.gains("test", comparison.points()))
    evaluation_run.log_params({names.MODEL_URI_PARAM: target.model_uri})
    # On the logged model's page too, measured on the test set.
    evaluation_run.log_metrics(test_metrics, model_id=target.model_id, dataset=_test_set(digest))
    evaluation_run.log_artifacts(folder)
    # The train run gets the numbers and figures too, so the UI shows val and test together.
    trained = tracking.Run(target.run_id)
    trained.log_metrics(test_metrics)
    trained.log_artifacts(folder, "evaluation")
    trained.set_tags({names.EVALUATED_ON: digest, names.EVALUATED_MODEL: target.model_uri})
    summary = (
        f"Evaluated {target.model_uri} ({target.arch}, from run {target.run_id}) on "
        f"{numbers['test_set']}: test accuracy {numbers[names.TEST_ACCURACY]:.4f}, test loss "
        f"{numbers[names.TEST_LOSS]:.4f}."
    )
    if numbers.get("verdict"):
        summary += f" Paired: {numbers['verdict']}."
        evaluation_run.set_tags({names.VERDICT: numbers["verdict"]})
        trained.set_tags({names.VERDICT: numbers["verdict"]})
    figures_note = (
        f" Figures and tables (confusion_matrix.png and .csv, per_class.csv, "
        f"worst_misclassified.png, summary.md, and test_correct.txt: which test images it got "
        f"right) are this run's artifacts, and under evaluation/ "
        f"on train run {target.run_id}."
    )
    registration = None
    if register and target.registrable:
        registration = tracking.register_if_better(
            target, numbers[names.TEST_ACCURACY], summary, _test_set(digest)[1]
        )
        decision = {names.CHAMPION_DECISION: registration.describe()}
        evaluation_run.set_tags(decision)
        trained.set_tags(decision)
        summary += f" Registry: {registration.describe()}."
    evaluation_run.describe(summary + figures_note)
    return registration


def evaluate_run(
    data_dir: Path,
    run_id: str | None = None,
    model_uri: str | None = None,
    register: bool = True,
    tags: dict[str, str] | None = None,
    *,
    store: tracking.Store,
) -> EvalResult:
    """Evaluate a train run's model (or any model URI) on the test set and log the results.

    The evaluate run is a child of the active run (the main job, a study) or, on its own, of
    the train run it scores.
    """
    store.open()
    target = tracking.resolve_model(run_id, model_uri)  # bad ids and URIs fail here
    dataset = data.load_dataset(data_dir)
    model = tracking.load_model(target.model_uri)
    probabilities = np.asarray(model.predict(dataset.x_test))  # what serving would answer
    matrix = confusion_matrix(dataset.y_test, probabilities.argmax(axis=1))
    report, pairs = per_class_report(matrix), most_confused(matrix)
    numbers: dict[str, Any] = {
        names.MODEL_URI_PARAM: target.model_uri,
        names.TEST_ACCURACY: float(np.trace(matrix) / matrix.sum()),
        names.TEST_LOSS: cross_entropy(probabilities, dataset.y_test),
        "test_set": dataset.test_set(),
    }
    correct = probabilities.argmax(axis=1) == dataset.y_test
    trained_params, trained_tags = (
        tracking.run_params(target.run_id),
        tracking.run_tags(target.run_id),
    )
    run_tags = {
        names.ARCH: target.arch,
        names.DATA_DIGEST: dataset.digest,
        names.EVALUATED_RUN: target.run_id,
        names.TEST_SET: numbers["test_set"],
        **(tags or {}),
    }
    if names.CONFIG_HASH in trained_tags:  # so that a tuned model finds its baseline here
        run_tags[names.CONFIG_HASH] = trained_tags[names.CONFIG_HASH]
    if names.TUNED_FROM in trained_tags:
        numbers["comparison"], numbers["verdict"] = _against_baseline(
            trained_tags, dataset.digest, correct
        )
    elif is_preset_run(trained_params):  # a baseline later tuned models are compared with
        run_tags[names.PRESET] = trained_params["preset"]
    with (
        tracking.run(
            "evaluate", f"evaluate-{target.arch}", run_tags, parent_run_id=target.run_id
        ) as evaluation_run,
        tempfile.TemporaryDirectory() as tmp,
    ):
        folder = Path(tmp)
        tracking.log_dataset(
            dataset.x_test, dataset.y_test, *_test_set(dataset.digest), data_dir, "testing"
        )
        summary = summary_markdown(numbers, report, pairs)
        _write_artifacts(folder, matrix, report, probabilities, dataset, summary)
        (folder / CORRECT_FILE).write_text(paired.pack(correct))
        registration = _record(evaluation_run, target, numbers, folder, dataset.digest, register)
    return EvalResult(
        run_id=target.run_id,
        experiment_id=target.experiment_id,
        model_uri=target.model_uri,
        arch=target.arch,
        test_accuracy=numbers[names.TEST_ACCURACY],
        test_loss=numbers[names.TEST_LOSS],
        confused_pairs=pairs,
        registration=registration,
        evaluation_run_id=evaluation_run.run_id,
        test_set=numbers["test_set"],
        verdict=numbers.get("verdict", ""),
    )
