"""The run context (true end states, heartbeat, signals) and a handle that logs onto a run."""

from __future__ import annotations

import contextlib
import signal
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import mlflow
from mlflow.entities import Metric, Param, RunStatus, RunTag

from pipeline import interrupts, provenance
from pipeline.errors import StageInterrupted, redact_text
from pipeline.tracking import heartbeat, names


@dataclass(frozen=True)
class Run:
    """A run to log onto by id (the active run or any other); the only way stages write to it."""

    run_id: str
    experiment_id: str = ""
    name: str = ""

    @property
    def _client(self) -> mlflow.MlflowClient:
        return mlflow.MlflowClient()

    def rename(self, name: str) -> None:
        """The run's name, once what it is is known (a trial's chosen epochs, say)."""
        self._client.update_run(self.run_id, name=name)

    def describe(self, text: str) -> None:
        """The run's description in the MLflow UI: what it did and its headline numbers."""
        self.set_tags({names.NOTE: text})

    def log_params(self, params: Mapping[str, object]) -> None:
        self._client.log_batch(self.run_id, params=[Param(k, str(v)) for k, v in params.items()])

    def log_metrics(
        self,
        metrics: dict[str, float],
        step: int = 0,
        model_id: str | None = None,
        dataset: tuple[str, str] | None = None,
    ) -> None:
        """Log metrics; with model_id they also show on that logged model, measured on
        dataset (name, digest)."""
        stamp = int(time.time() * 1000)
        name, digest = dataset or (None, None)
        batch = [
            Metric(
                key,
                float(value),
                stamp,
                step,
                model_id=model_id,
                dataset_name=name,
                dataset_digest=digest,
                run_id=self.run_id if model_id else None,
            )
            for key, value in metrics.items()
        ]
        self._client.log_batch(self.run_id, metrics=batch)

    def set_tags(self, tags: Mapping[str, object]) -> None:
        batch = [RunTag(key, str(value)) for key, value in tags.items()]
        self._client.log_batch(self.run_id, tags=batch)

    def log_artifacts(self, folder, artifact_path: str | None = None) -> None:
        self._client.log_artifacts(self.run_id, str(folder), artifact_path)

    def log_artifact(self, path, artifact_path: str | None = None) -> None:
        self._client.log_artifact(self.run_id, str(path), artifact_path)

    def log_text(self, text: str, artifact_file: str) -> None:
        self._client.log_text(self.run_id, text, artifact_file)

    def log_dict(self, dictionary: dict, artifact_file: str) -> None:
        self._client.log_dict(self.run_id, dictionary, artifact_file)

    def log_figure(self, figure, artifact_file: str) -> None:
        self._client.log_figure(self.run_id, figure, artifact_file)


@contextlib.contextmanager
def run(
    stage: str,
    run_name: str | None = None,
    tags: dict[str, str] | None = None,
    run_id: str | None = None,
    killed_on: tuple[type[BaseException], ...] = (),
    parent_run_id: str | None = None,
) -> Iterator[Run]:
    """A run that always ends FINISHED, FAILED (with the reason) or KILLED, never RUNNING.

    With another run active (the main job, a study) the new run is its child. Otherwise it is
    run_id, or the run `mlflow run` made (MLFLOW_RUN_ID), or a new one. Exceptions in killed_on
    (an Optuna prune, say) end the run KILLED and propagate. parent_run_id is the run to
    show it under in the UI when no run is active.
    """
    with interrupts.raising():
        nested = mlflow.active_run() is not None
        active = mlflow.start_run(
            run_id=run_id, run_name=None if run_id else run_name, nested=nested
        )
        handle = Run(active.info.run_id, active.info.experiment_id, active.info.run_name or "")
        beat = heartbeat.Heartbeat(handle.run_id)
        parent = {names.PARENT_RUN: parent_run_id} if parent_run_id and not nested else {}
        # `mlflow run` records the commit of the project it ran: that one stays.
        code = {k: v for k, v in code_tags().items() if k not in active.data.tags}
        try:
            handle.set_tags({names.STAGE: stage, **parent, **code, **(tags or {})})
            yield handle
        except KeyboardInterrupt as error:
            _end(RunStatus.KILLED, str(error) or "interrupted by SIGINT")
            number = getattr(error, "signal_number", signal.SIGINT)
            raise StageInterrupted(handle.run_id, number) from None
        except (StageInterrupted, *killed_on) as error:  # type: ignore[misc]  # interrupted, or pruned
            _end(RunStatus.KILLED, str(error) or type(error).__name__)
            raise
        except BaseException as error:
            _end(RunStatus.FAILED, str(error).splitlines()[0] if str(error) else repr(error))
            raise
        else:
            if run_id is not None:  # a resumed run that finishes has failed no more
                with contextlib.suppress(Exception):  # no such tag
                    mlflow.MlflowClient().delete_tag(handle.run_id, names.FAILURE_REASON)
            _end(RunStatus.FINISHED, None)
        finally:
            beat.stop()


def code_tags() -> dict[str, str]:
    """The tags saying which code a run ran: its source hash and, in a git checkout, the
    commit and whether tracked files differed from it."""
    code = provenance.provenance()
    tags = {names.CODE_HASH: code.code_hash}
    if code.git_commit is not None:
        tags[names.GIT_COMMIT] = code.git_commit
    if code.git_dirty is not None:
        tags[names.GIT_DIRTY] = str(code.git_dirty).lower()
    return tags


def finish_run(run_id: str, status: str, reason: str | None = None) -> None:
    """Set another run's end state (FINISHED, FAILED or KILLED), with the reason for it."""
    client = mlflow.MlflowClient()
    if reason:
        client.set_tag(run_id, names.FAILURE_REASON, redact_text(reason)[:500])
    client.set_terminated(run_id, status)


def _end(status: int, reason: str | None) -> None:
    # With the store gone the run stays RUNNING there until `pipeline reap` (no heartbeat).
    with contextlib.suppress(Exception):
        if reason:
            mlflow.set_tag(names.FAILURE_REASON, redact_text(reason)[:500])
    with contextlib.suppress(Exception):
        mlflow.end_run(RunStatus.to_string(status))
