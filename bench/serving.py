"""The served model against its own Keras model, in process and over HTTP, in one run.

    python bench/serving.py --source ../shared/data/mnist [--rounds 5] [--arch mlp lstm]
                            [--skip-http]

For each arch, `pipeline train --epochs 1` logs a model (pipeline/serving.py around the Keras
model) into a scratch store. Then, in interleaved rounds:

- in process: the logged model through `mlflow.pyfunc` (uint8 images, as a client sends them)
  against a bare call of its Keras model (`model(x, training=False)` on float32) and Keras'
  compiled step (`predict_on_batch`), at batch 1 and 10,000: median milliseconds per call and
  the ratio pyfunc / bare call per round (median, min-max);
- answers: argmax identical to Keras' own `model.predict` on the 10,000 test images, and the
  largest difference of a probability;
- over HTTP (`mlflow models serve --env-manager local`, one worker each, started alike): this
  model against MLflow's Keras flavor of the same weights (`mlflow.keras.save_model`), p50 / p95
  latency at batch 1 and images per second at batch 256 and 2,000 (payloads encoded before the
  clock starts: the server's decoding counts, the client's does not);
- encodings: the same 2,000 images sent to this model as nested 28x28 integers, as rows of 784
  integers and as 28x28 floats (bytes per request, images per second).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from common import free_port  # bench/, beside this script

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def pipeline(workdir: Path, env: dict, *args: str) -> None:
    subprocess.run(
        [str(BIN / "pipeline"), *args], cwd=workdir, env=env, check=True, capture_output=True
    )


def median_ms(call, argument, repeats: int) -> float:
    call(argument)  # warm: the first call traces
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        call(argument)
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds) * 1000


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"


def ratios(ours: list[float], theirs: list[float]) -> str:
    """Round by round ratios (the rounds interleave the two), as median (min-max)."""
    return spread([o / t for o, t in zip(ours, theirs, strict=True)])


def in_process(uri: str, images: np.ndarray, rounds: int) -> None:
    import mlflow

    model = mlflow.pyfunc.load_model(uri)
    keras_model = model.unwrap_python_model().model
    floats = images.astype(np.float32)
    reference = np.asarray(keras_model.predict(floats, verbose=0))
    answers = model.predict(images)
    same = bool((answers.argmax(axis=1) == reference.argmax(axis=1)).all())
    print(
        f"  answers: argmax identical to Keras predict on {len(images)} images: {same}; "
        f"largest probability difference {np.abs(answers - reference).max():.2e}"
    )

    def bare(x):
        return np.asarray(keras_model(x, training=False))

    for batch, repeats in ((1, 200), (10_000, 5)):
        times: dict[str, list[float]] = {"pyfunc": [], "call": [], "step": []}
        for _ in range(rounds):
            times["pyfunc"].append(median_ms(model.predict, images[:batch], repeats))
            times["call"].append(median_ms(bare, floats[:batch], repeats))
            times["step"].append(median_ms(keras_model.predict_on_batch, floats[:batch], repeats))
        print(
            f"  batch {batch:>6}: pyfunc {spread(times['pyfunc'])} ms, model(x) "
            f"{spread(times['call'])} ms, predict_on_batch {spread(times['step'])} ms; "
            f"pyfunc / model(x) {ratios(times['pyfunc'], times['call'])}"
        )


def serve(model_path: Path, env: dict) -> tuple[subprocess.Popen, str]:
    port = free_port()
    process = subprocess.Popen(
        [
            str(BIN / "mlflow"),
            "models",
            "serve",
            "-m",
            str(model_path),
            "--env-manager",
            "local",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    return process, f"http://127.0.0.1:{port}"


def wait_ready(url: str, session) -> None:
    deadline = time.time() + 300
    while time.time() < deadline:
        try:
            if session.get(url + "/ping", timeout=2).status_code == 200:
                return
        except OSError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"{url} did not answer")


def post_seconds(session, url: str, body: bytes, repeats: int) -> list[float]:
    headers = {"Content-Type": "application/json"}
    session.post(url + "/invocations", data=body, headers=headers).raise_for_status()  # warm
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        session.post(url + "/invocations", data=body, headers=headers).raise_for_status()
        seconds.append(time.perf_counter() - started)
    return seconds


def over_http(
    pyfunc_path: Path, keras_path: Path, images: np.ndarray, env: dict, rounds: int
) -> None:
    import requests

    servers = {"pipeline": serve(pyfunc_path, env), "keras flavor": serve(keras_path, env)}
    try:
        sessions = {name: requests.Session() for name in servers}
        for name, (_, url) in servers.items():
            wait_ready(url, sessions[name])
        bodies = {b: json.dumps({"inputs": images[:b].tolist()}).encode() for b in (1, 256, 2000)}
        latency: dict[str, list[float]] = {name: [] for name in servers}
        rates: dict[tuple[str, int], list[float]] = {}
        for _ in range(rounds):
            for name, (_, url) in servers.items():
                latency[name] += post_seconds(sessions[name], url, bodies[1], 40)
                for batch, repeats in ((256, 10), (2000, 3)):
                    took = post_seconds(sessions[name], url, bodies[batch], repeats)
                    rates.setdefault((name, batch), []).append(batch / statistics.median(took))
        for name in servers:
            p50, p95 = np.percentile(np.array(latency[name]) * 1000, [50, 95])
            print(
                f"  {name:>12}: batch 1 p50 {p50:.1f} ms, p95 {p95:.1f} ms; "
                + "; ".join(f"batch {b}: {spread(rates[(name, b)])} images/s" for b in (256, 2000))
            )
        ours, theirs = latency["pipeline"], latency["keras flavor"]
        throughput = ", ".join(
            f"batch {b} {ratios(rates[('pipeline', b)], rates[('keras flavor', b)])}"
            for b in (256, 2000)
        )
        print(
            "  pipeline / keras flavor: latency p50 "
            f"{statistics.median(ours) / statistics.median(theirs):.2f}; throughput {throughput}"
        )
        encodings(sessions["pipeline"], servers["pipeline"][1], images[:2000], rounds)
    finally:
        for process, _ in servers.values():
            os.killpg(process.pid, 15)
            process.wait()


def encodings(session, url: str, images: np.ndarray, rounds: int) -> None:
    bodies = {
        "28x28 integers": {"inputs": images.tolist()},
        "784-pixel rows of integers": {"inputs": images.reshape(len(images), -1).tolist()},
        "28x28 floats": {"inputs": images.astype(np.float32).tolist()},
    }
    encoded = {
        name: json.dumps(body, separators=(",", ":")).encode() for name, body in bodies.items()
    }
    rates: dict[str, list[float]] = {name: [] for name in bodies}
    for _ in range(rounds):
        for name, body in encoded.items():
            took = post_seconds(session, url, body, 3)
            rates[name].append(len(images) / statistics.median(took))
    for name, body in encoded.items():
        print(
            f"  {name:>27}: {len(body) / len(images):,.0f} bytes per image, "
            f"{spread(rates[name])} images/s"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", required=True)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--arch", nargs="+", default=["mlp", "lstm"])
    parser.add_argument("--skip-http", action="store_true")
    options = parser.parse_args()
    import mlflow

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        uri = f"sqlite:///{workdir}/mlflow.db"
        env = {
            **os.environ,
            "MLFLOW_TRACKING_URI": uri,
            "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
            "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        }
        os.environ.update(MLFLOW_TRACKING_URI=uri, MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR="false")
        pipeline(workdir, env, "download", "--source", str(Path(options.source).resolve()))
        with np.load(workdir / "data/mnist/mnist.npz") as arrays:
            images = arrays["test_images"]
        for arch in options.arch:
            pipeline(workdir, env, "train", "--arch", arch, "--epochs", "1")
            run = mlflow.search_runs(
                search_all_experiments=True,
                filter_string=f"tags.`pipeline.stage` = 'train' and params.arch = '{arch}'",
                output_format="list",
            )[0]
            model_uri = run.data.tags["pipeline.model_uri"]
            print(f"{arch} ({model_uri}):")
            in_process(model_uri, images, options.rounds)
            if options.skip_http:
                continue
            pyfunc_path = Path(
                mlflow.artifacts.download_artifacts(
                    model_uri, dst_path=str(workdir / f"{arch}-pyfunc")
                )
            )
            keras_model = mlflow.pyfunc.load_model(model_uri).unwrap_python_model().model
            keras_path = workdir / f"{arch}-keras"
            import mlflow.keras

            # MLflow logs "without specifying model signature": the peer is saved as is.
            logging.getLogger("mlflow.keras.save").setLevel(logging.ERROR)
            mlflow.keras.save_model(keras_model, str(keras_path))
            over_http(pyfunc_path, keras_path, images, env, options.rounds)


if __name__ == "__main__":
    main()
