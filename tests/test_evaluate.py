"""The evaluate stage: test metrics and artifacts, the champion gate, bad input, serving."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request

import mlflow
import numpy as np
import pandas as pd
import pytest
from conftest import free_port, one_line_error, runs, subprocess_env


def train_run(cli, tiny, *args: str) -> str:
    result = cli("train", "--arch", "mlp", *tiny.model, *args)
    assert result.exit_code == 0, result.stderr
    return runs().iloc[0]["run_id"]


def registry_state(name: str = "mnist-mlp") -> dict:
    client = mlflow.MlflowClient()
    versions = client.search_model_versions(f"name = '{name}'")
    champion = client.get_registered_model(name).aliases.get("champion") if versions else None
    champion = None if champion is None else str(champion)
    return {"versions": sorted(int(v.version) for v in versions), "champion": champion}


def test_metrics_and_artifacts(cli, data_dir, tiny):
    run_id = train_run(cli, tiny, "--epochs", "2", "--learning-rate", "0.01")
    result = cli("evaluate", "--run-id", run_id)
    assert result.exit_code == 0, result.stderr
    assert "most confused" in result.stdout and run_id in result.stdout
    run = mlflow.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert {"test_accuracy", "test_loss", "val_accuracy"} <= set(run.data.metrics)
    client = mlflow.MlflowClient()
    names = {item.path for item in client.list_artifacts(run_id, "evaluation")}
    assert names == {
        f"evaluation/{name}"
        for name in (
            "confusion_matrix.png",
            "confusion_matrix.csv",
            "per_class.csv",
            "worst_misclassified.png",
            "summary.md",
            "test_correct.txt",  # which test images it got right, for paired comparisons
        )
    }
    folder = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="evaluation")
    matrix = pd.read_csv(f"{folder}/confusion_matrix.csv", index_col=0).to_numpy()
    assert matrix.sum() == 100  # the synthetic test set
    from pipeline import paired

    correct = paired.unpack(open(f"{folder}/test_correct.txt").read())
    assert len(correct) == 100 and correct.mean() == pytest.approx(
        run.data.metrics["test_accuracy"]
    )
    assert run.data.metrics["test_accuracy"] == pytest.approx(np.trace(matrix) / 100)
    report = pd.read_csv(f"{folder}/per_class.csv", index_col=0)
    assert list(report.columns) == ["precision", "recall", "f1", "support"]
    assert report["support"].tolist() == matrix.sum(axis=1).tolist()
    assert registry_state() == {"versions": [1], "champion": "1"}
    # The champion's logged model shows validation and test metrics with their datasets.
    champion = client.get_model_version_by_alias("mnist-mlp", "champion")
    model = mlflow.get_logged_model(champion.source.removeprefix("models:/"))
    datasets = {m.key: m.dataset_name for m in model.metrics}
    assert {k: datasets[k] for k in ("val_accuracy", "test_accuracy", "test_loss")} == {
        "val_accuracy": "mnist-validation",
        "test_accuracy": "mnist-test",
        "test_loss": "mnist-test",
    }
    tested = {m.key: m.value for m in model.metrics if m.dataset_name == "mnist-test"}
    assert tested["test_accuracy"] == pytest.approx(np.trace(matrix) / 100)
    evaluation = mlflow.get_run(result_run_id(result))
    assert [i.dataset.name for i in evaluation.inputs.dataset_inputs] == ["mnist-test"]
    # The evaluate run holds what it made too, and says where the train run's copy is.
    own = {item.path for item in client.list_artifacts(evaluation.info.run_id)}
    assert own == {path.removeprefix("evaluation/") for path in names}
    note = evaluation.data.tags["mlflow.note.content"]
    assert "confusion_matrix.png" in note and f"{run_id}" in note and "evaluation/" in note
    ranked = mlflow.search_logged_models(
        experiment_ids=[run.info.experiment_id],
        order_by=[{"field_name": "metrics.test_accuracy", "ascending": False}],
        output_format="list",
    )
    assert ranked[0].model_id == model.model_id


def result_run_id(result) -> str:
    """The evaluate run id the CLI printed."""
    return re.search(r"evaluate run (\w{32})", result.stdout).group(1)


@pytest.mark.slow
def test_champion_gate_both_ways(cli, data_dir, tiny):
    weak = train_run(cli, tiny, "--epochs", "1", "--learning-rate", "1e-7")
    strong = train_run(cli, tiny, "--epochs", "3", "--learning-rate", "0.01")
    assert cli("evaluate", "--run-id", weak).exit_code == 0
    assert registry_state() == {"versions": [1], "champion": "1"}

    better = cli("evaluate", "--run-id", strong)
    assert better.exit_code == 0, better.stderr
    assert "is the new champion" in better.stdout
    assert registry_state() == {"versions": [1, 2], "champion": "2"}

    worse = cli("evaluate", "--run-id", weak)
    assert worse.exit_code == 0
    assert "does not beat champion v2" in worse.stdout
    assert registry_state() == {"versions": [1, 2, 3], "champion": "2"}
    decision = mlflow.get_run(weak).data.tags["pipeline.champion_decision"]
    assert "does not beat" in decision

    by_alias = cli("evaluate", "--model-uri", "models:/mnist-mlp@champion")
    assert by_alias.exit_code == 0, by_alias.stderr
    assert registry_state()["versions"] == [1, 2, 3]  # a registered version is not re-registered


def test_no_register(cli, data_dir, tiny):
    run_id = train_run(cli, tiny, "--epochs", "1")
    assert cli("evaluate", "--run-id", run_id, "--no-register").exit_code == 0
    assert registry_state() == {"versions": [], "champion": None}


BAD_EVALUATIONS = [
    (("--run-id", "0" * 32), "no run 000"),
    (("--run-id", "DOWNLOAD"), "has no logged model"),
    (("--model-uri", "models:/mnist-lstm@champion"), "does not resolve"),
    (("--model-uri", "models:/mnist-mlp/7"), "does not resolve"),
    (("--model-uri", "s3://bucket/model"), "expected runs:/RUN_ID/MODEL_NAME"),
    ((), "give exactly one of --run-id or --model-uri"),
    (("--run-id", "TRAIN", "--data-dir", "elsewhere"), "run `pipeline download"),
]


def test_bad_input_logs_nothing(cli, workdir, data_dir, source, tiny):
    """Each bad request (one trained model serves them all) is one line and logs nothing."""
    train_id = train_run(cli, tiny, "--epochs", "1")
    assert cli("download", "--source", source, "--data-dir", workdir / "d2").exit_code == 0
    download_id = runs().iloc[0]["run_id"]
    for args, fragment in BAD_EVALUATIONS:
        args = [{"TRAIN": train_id, "DOWNLOAD": download_id}.get(arg, arg) for arg in args]
        result = cli("evaluate", *args)
        assert result.exit_code != 0, args
        assert fragment in one_line_error(result), args
    assert "test_accuracy" not in mlflow.get_run(train_id).data.metrics
    assert mlflow.MlflowClient().search_registered_models() == []
    assert set(runs()["tags.pipeline.stage"]) == {"train", "download"}


def assert_shows_its_signature(uri: str) -> None:
    """The model's signature, as the UI shows it: float32 images in, 10 probabilities out."""
    signature = mlflow.models.get_model_info(uri).signature
    assert signature is not None, uri
    (inputs,), (outputs,) = signature.inputs.inputs, signature.outputs.inputs
    assert (inputs.type, inputs.shape) == (np.dtype("float32"), (-1, 28, 28)), uri
    assert (outputs.type, outputs.shape) == (np.dtype("float32"), (-1, 10)), uri


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["mlp", "lstm"])
def test_served_champion_matches_evaluation(cli, workdir, data_dir, arch):
    result = cli("train", "--arch", arch, "--epochs", "2", "--hidden-size", "16", "--no-progress")
    assert result.exit_code == 0, result.stderr
    run_id = runs().iloc[0]["run_id"]
    assert cli("evaluate", "--run-id", run_id).exit_code == 0
    folder = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="evaluation")
    logged = pd.read_csv(f"{folder}/confusion_matrix.csv", index_col=0).to_numpy()
    assert_shows_its_signature(f"models:/mnist-{arch}@champion")  # the registered version

    port = free_port()
    log = workdir / "server.log"
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "models",
            "serve",
            "-m",
            f"models:/mnist-{arch}@champion",
            "--env-manager",
            "local",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        cwd=workdir,
        env=subprocess_env(workdir),
        stdout=subprocess.DEVNULL,
        stderr=log.open("w"),
    )

    def ask(images, deadline: float) -> np.ndarray | None:
        body = json.dumps({"inputs": images.tolist()}).encode()
        while time.time() < deadline:
            assert server.poll() is None, "mlflow models serve exited"
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/invocations",
                data=body,
                headers={"Content-Type": "application/json"},
            )
            try:
                with urllib.request.urlopen(request, timeout=30) as response:
                    return np.asarray(json.loads(response.read())["predictions"])
            except OSError:
                time.sleep(1)
        return None

    try:
        with np.load(data_dir / "mnist.npz") as arrays:
            images, labels = arrays["test_images"], arrays["test_labels"]
        answer = ask(images.astype(float), time.time() + 180)
        assert answer is not None, "the model server never answered"
        as_integers = ask(images, time.time() + 30)  # uint8 pixels arrive as JSON integers
        assert (as_integers.argmax(axis=1) == answer.argmax(axis=1)).all()
        rows = images.reshape(len(images), -1)  # rows of 784 pixels
        as_rows = ask(rows, time.time() + 30)
        assert (as_rows.argmax(axis=1) == answer.argmax(axis=1)).all()
        framed = urllib.request.Request(  # the README: only JSON "inputs" is taken
            f"http://127.0.0.1:{port}/invocations",
            data=json.dumps({"dataframe_split": {"data": rows[:2].tolist()}}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(framed, timeout=30)
        assert refused.value.code == 400
        assert "<= 1.0" not in log.read_text()
        ask(images[:5] / 255.0, time.time() + 30)  # scaled to 0-1 by mistake: a warning
        bad = images[:2].astype(float)
        bad[0, 0, 0] = float("nan")  # json.dumps writes NaN, which MLflow's server reads
        for body, reason in (
            (bad.tolist(), "expected finite pixel intensities 0-255"),
            ((images[:2] * 2.0).tolist(), "expected pixel intensities 0-255, got values from"),
            (images[:2, :, :20].tolist(), "expected a batch of 28x28 images"),
        ):
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/invocations",
                data=json.dumps({"inputs": body}).encode(),
                headers={"Content-Type": "application/json"},
            )
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(request, timeout=30)
            assert refused.value.code == 400
            message = json.loads(refused.value.read())["message"]
            assert message.startswith(reason), message[:300]
    finally:
        server.terminate()
        server.wait(timeout=30)
    text = log.read_text()
    assert text.count("all pixel values are <= 1.0") == 1
    assert "━" not in text and "step" not in text  # no progress bar per request
    predicted = answer.argmax(axis=1)
    served = np.zeros((10, 10), dtype=int)
    np.add.at(served, (labels, predicted), 1)
    assert (served == logged).all()


@pytest.mark.slow
def answers_at_the_models_own_speed(model, images: np.ndarray) -> None:
    """The served model answers as its Keras model does, through the model's compiled step:
    never through Keras' predict(), which builds a tf.data pipeline per request; a request
    larger than one call's chunk is answered whole; float32 input is checked without a copy."""
    import keras

    from pipeline import serving

    keras_model = model.unwrap_python_model().model
    floats = images.astype(np.float32)
    expected = np.asarray(keras_model.predict(floats, verbose=0))
    copies, size = serving.CHUNK // len(floats) + 1, serving.CHUNK + 3
    many = np.concatenate([floats] * copies)[:size]
    original = keras.Model.predict

    def refuse(*args, **kwargs):
        raise AssertionError("the served model called Keras' predict()")

    keras.Model.predict = refuse
    try:
        answers = model.predict(images)
        whole = model.predict(many)
    finally:
        keras.Model.predict = original
    assert (answers.argmax(axis=1) == expected.argmax(axis=1)).all()
    np.testing.assert_allclose(answers, expected, atol=1e-5)
    np.testing.assert_allclose(whole, np.concatenate([expected] * copies)[:size], atol=1e-5)
    assert serving.as_images(floats) is floats  # no copy of a float32 batch


def test_logged_model_takes_any_pixel_dtype_without_the_project(
    cli, workdir, data_dir, caplog, tiny
):
    run_id = train_run(cli, tiny, "--epochs", "1")
    uri = mlflow.get_run(run_id).data.tags["pipeline.model_uri"]
    model = mlflow.pyfunc.load_model(uri)
    with np.load(data_dir / "mnist.npz") as arrays:
        images = arrays["test_images"]
    classes = model.predict(images.astype(np.float32)).argmax(axis=1)
    for dtype in (np.uint8, np.float64, np.int64):
        assert (model.predict(images.astype(dtype)).argmax(axis=1) == classes).all()
    rows = images.reshape(len(images), -1)  # flattened rows of 784 pixels, as array and frame
    assert (model.predict(rows).argmax(axis=1) == classes).all()
    assert (model.predict(pd.DataFrame(rows)).argmax(axis=1) == classes).all()
    assert_shows_its_signature(uri)
    answers_at_the_models_own_speed(model, images)
    assert "<= 1.0" not in caplog.text
    model.predict(images / 255.0)
    assert "all pixel values are <= 1.0" in caplog.text
    with pytest.raises(Exception, match="28x28"):
        model.predict(np.zeros((2, 27, 28)))
    # Loadable where the project cannot be imported at all.
    script = (
        "import sys; sys.modules['pipeline'] = None\n"
        "import mlflow, numpy as np\n"
        f"model = mlflow.pyfunc.load_model({uri!r})\n"
        "print(model.predict(np.zeros((3, 28, 28), np.uint8)).shape)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=workdir,
        capture_output=True,
        text=True,
        env=subprocess_env(workdir),
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().endswith("(3, 10)")


@pytest.mark.slow
def test_evaluate_says_nothing_of_tensorflows_start_up(cli, workdir, data_dir, tiny):
    """TensorFlow's C++ start-up notices (oneDNN, CUDA) are not the user's: a fresh evaluate
    process loads the model after importing TensorFlow quietly."""
    from conftest import PIPELINE, run_to_end

    run_id = train_run(cli, tiny, "--epochs", "1")
    done = run_to_end(workdir, *PIPELINE, "evaluate", "--run-id", run_id, "--no-register")
    assert done.returncode == 0, done.stderr
    assert not [line for line in done.stderr.splitlines() if "oneDNN" in line or "cuInit" in line]
