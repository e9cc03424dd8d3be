"""Reading the store: metric histories, runs by tag, runs for reports, resumability."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

import mlflow

from pipeline.errors import PipelineError, redact
from pipeline.tracking import heartbeat, names
from pipeline.tracking.store import current_experiment_id

SEARCH_MAX_RESULTS = 100_000  # mlflow.search_runs' own default


def config_hash(params: dict) -> str:
    """A short hash of a run's params, for finding runs with the same configuration."""
    blob = json.dumps(params, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


def metric_history(run_id: str, key: str) -> list[tuple[int, float]]:
    """(step, value) pairs of one metric of a run, ordered by step."""
    history = mlflow.MlflowClient().get_metric_history(run_id, key)
    return sorted((metric.step, metric.value) for metric in history)


def latest_metrics(run_id: str) -> dict[str, float]:
    """The latest value of every metric of a run."""
    return dict(mlflow.get_run(run_id).data.metrics)


def run_tags(run_id: str) -> dict[str, str]:
    return dict(mlflow.get_run(run_id).data.tags)


def run_params(run_id: str) -> dict[str, str]:
    return dict(mlflow.get_run(run_id).data.params)


def read_text(run_id: str, artifact_file: str) -> str | None:
    """A text artifact of a run (None: the run has no such file)."""
    try:
        return mlflow.artifacts.load_text(f"runs:/{run_id}/{artifact_file}")
    except Exception:  # MLflow raises several kinds for a missing file
        return None


def newest_evaluation_of(config_hash: str, digest: str) -> str | None:
    """The newest FINISHED evaluate run, in the current experiment, of a model trained with the
    config of this hash, on the data of this digest (same test images)."""
    found = mlflow.search_runs(
        experiment_ids=[current_experiment_id()],
        filter_string=(
            f"tags.`{names.STAGE}` = 'evaluate' and tags.`{names.CONFIG_HASH}` = '{config_hash}' "
            f"and tags.`{names.DATA_DIGEST}` = '{digest}' and attributes.status = 'FINISHED'"
        ),
        order_by=["attributes.start_time DESC"],
        max_results=1,
        output_format="list",
    )
    return found[0].info.run_id if found else None


def find_finished(tag: str, value: str) -> str | None:
    """The newest FINISHED run (any experiment) whose tag has value, if any."""
    found = mlflow.search_runs(
        filter_string=f"tags.`{tag}` = '{value}' and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
        output_format="list",
        search_all_experiments=True,
    )
    return found[0].info.run_id if found else None


def check_resumable(run_id: str) -> None:
    """Raise unless run_id names a train run that did not finish."""
    try:
        found = mlflow.get_run(run_id)
    except Exception:
        uri = redact(mlflow.get_tracking_uri())
        raise PipelineError(f"--resume {run_id}: no such run in {uri}") from None
    if found.info.status == "FINISHED":
        raise PipelineError(f"--resume {run_id}: the run already finished")
    # On this machine the caller holds the run's checkpoint lock, so no process here trains it;
    # a process on another machine is alive while its heartbeat is fresh.
    silent = heartbeat.seconds_silent(found)
    if (
        found.info.status == "RUNNING"
        and heartbeat.beats_elsewhere(found)
        and silent is not None
        and silent < heartbeat.lease(found)
    ):
        raise PipelineError(
            f"--resume {run_id}: the run is alive (its heartbeat came {silent:.0f} s ago); "
            f"if its process is gone, wait for the heartbeat to go stale or `pipeline reap`"
        )


def experiment_id_of(experiment: str) -> str | None:
    """The id of the experiment of this name (None: no such experiment)."""
    found = mlflow.get_experiment_by_name(experiment)
    return None if found is None else found.experiment_id


@dataclass(frozen=True)
class Match:
    """Which FINISHED runs to fetch, as a server-side filter: tags equal to values, or these run
    ids; newest first, at most max_results."""

    tags: dict[str, str] = field(default_factory=dict)
    run_ids: tuple[str, ...] = ()
    max_results: int | None = None

    def filter_string(self) -> str:
        def quoted(value: str) -> str:
            return "'" + value.replace("'", "''") + "'"

        clauses = ["attributes.status = 'FINISHED'"]
        clauses += [f"tags.`{key}` = {quoted(value)}" for key, value in self.tags.items()]
        if self.run_ids:
            clauses.append(f"attributes.run_id IN ({', '.join(map(quoted, self.run_ids))})")
        return " and ".join(clauses)


def finished_runs(experiment_id: str, match: Match):
    """The FINISHED runs of an experiment that match, as a pandas DataFrame, newest first: only
    what the caller shows is read from the store."""
    return mlflow.search_runs(
        experiment_ids=[experiment_id],
        filter_string=match.filter_string(),
        order_by=["attributes.start_time DESC"],
        max_results=match.max_results or SEARCH_MAX_RESULTS,
    )
