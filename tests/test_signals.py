"""Stop signals: Ctrl-C and SIGTERM end runs KILLED in one line, however many arrive and when."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import runs


@pytest.mark.slow
def test_repeated_ctrl_c_in_tune_is_one_line(cli, workdir, data_dir):
    import signal
    import subprocess
    import sys
    import time

    from conftest import subprocess_env, wait_for

    assert cli("init-stores", "--storage", f"sqlite:///{workdir / 'optuna.db'}").exit_code == 0
    tune = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pipeline",
            "tune",
            "--arch",
            "mlp",
            "--n-trials",
            "3",
            "--epochs-range",
            "200",
            "300",
            "--hidden-size-range",
            "8",
            "16",
            "--storage",
            f"sqlite:///{workdir / 'optuna.db'}",
        ],
        cwd=workdir,
        env=subprocess_env(workdir),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )

    def trial_running() -> bool:  # a run's tags may come a moment after the run
        frame = runs()
        stages = frame.get("tags.pipeline.stage")
        return stages is not None and bool((stages == "trial").any())

    wait_for(trial_running, 180, "a trial run")
    time.sleep(1)
    tune.send_signal(signal.SIGINT)
    time.sleep(0.1)
    tune.send_signal(signal.SIGINT)
    _, stderr = tune.communicate(timeout=120)
    assert tune.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert stderr.strip().splitlines()[-1].startswith("Error: interrupted by SIGINT"), stderr
    assert "RUNNING" not in set(runs()["status"])


def test_after_the_first_stop_signal_repeats_are_ignored_until_the_process_ends():
    """A second Ctrl-C while a trial's run and then its study's run are being closed must not
    interrupt the closing (a run was left RUNNING that way)."""
    import signal

    from pipeline import interrupts

    saved = {number: signal.getsignal(number) for number in interrupts.SIGNALS}
    try:
        with interrupts.raising():  # the study's run
            with pytest.raises(interrupts.Interrupted):
                with interrupts.raising():  # the trial's run
                    signal.raise_signal(signal.SIGINT)
            signal.raise_signal(signal.SIGINT)  # while the study's run closes: ignored
            signal.raise_signal(signal.SIGTERM)
        stop = interrupts.GracefulStop(lambda: None)
        for number in interrupts.SIGNALS:
            signal.signal(number, signal.default_int_handler)
        with stop.active():
            signal.raise_signal(signal.SIGTERM)
        assert stop.pending == signal.SIGTERM
        signal.raise_signal(signal.SIGINT)  # after a graceful stop too: ignored
    finally:
        for number, action in saved.items():
            signal.signal(number, action)


IMAGES = 270  # 9 batches of 32 an epoch


def _model_and_stop():
    """A small MLP and the graceful stop that ends its fit after the current batch."""
    from pipeline import fitting, interrupts
    from pipeline.config import train_config

    config = train_config("mlp", epochs=3, batch_size=32, hidden_size=8)
    model = fitting.new_model(config, IMAGES)
    return model, interrupts.GracefulStop(lambda: setattr(model, "stop_training", True))


def _fit_three_epochs(model, callbacks: list) -> None:
    images = np.random.default_rng(0).random((IMAGES, 28, 28), dtype=np.float32) * 255
    labels = np.arange(IMAGES) % 10
    model.fit(images, labels, batch_size=32, epochs=3, verbose=0, callbacks=callbacks)


def test_a_signal_just_before_keras_starts_still_stops_training(data_dir):
    """fit() clears stop_training as it starts; a stop requested a moment earlier still counts."""

    from pipeline import tracking
    from pipeline.callbacks import StepMetrics
    from pipeline.keras_runtime import keras

    model, stop = _model_and_stop()
    stop.pending = 2  # the signal came while fit() was being set up

    class Sink(tracking.StepMetricSink):
        def _send(self, metrics) -> None:  # no store in this test
            pass

    batches = keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda batch, logs: seen.append(batch)
    )
    seen: list[int] = []
    _fit_three_epochs(model, [StepMetrics(Sink("run", 0, 32, IMAGES, None), stop), batches])
    assert seen == [0]  # one batch, then it stopped (9 batches an epoch otherwise)


def test_a_signal_between_the_epoch_end_callbacks_leaves_them_agreeing(tmp_path):
    """A stop that lands after an epoch's step metrics were sent but before its checkpoint: the
    epoch is whole for every callback (the checkpoint once skipped it, so --resume trained it
    again and logged its steps twice)."""
    import signal

    from pipeline import checkpoints, interrupts, tracking
    from pipeline.callbacks import EpochCheckpoint, EpochHook, StepMetrics
    from pipeline.keras_runtime import keras
    from pipeline.tracking import names

    model, stop = _model_and_stop()
    sent: list[int] = []

    class Sink(tracking.StepMetricSink):
        def _send(self, metrics) -> None:  # the store is not what this test is about
            sent.extend(metric.step for metric in metrics if metric.key == names.BATCH_LOSS)

    sink = Sink("run", 0, 32, IMAGES, None)
    metrics = StepMetrics(sink, stop)
    state = {"epoch": 0, "step": 0}
    checkpoint = EpochCheckpoint(checkpoints.CheckpointWriter(tmp_path), state, metrics)
    signal_after_metrics = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: (
            signal.raise_signal(signal.SIGTERM) if epoch == 0 else None
        )
    )
    hooked: list[int] = []
    hook = EpochHook(lambda done, logs: hooked.append(done), stop)
    saved = {number: signal.getsignal(number) for number in interrupts.SIGNALS}
    try:
        with stop.active():
            _fit_three_epochs(model, [metrics, signal_after_metrics, checkpoint, hook])
    finally:
        for number, action in saved.items():
            signal.signal(number, action)
    assert stop.pending == signal.SIGTERM  # the stop came, after the first epoch
    assert sent == list(range(9))  # 9 batches an epoch: the first epoch's, once
    assert (state["epoch"], state["step"]) == (1, 9)  # and its checkpoint
    assert hooked == [1]
