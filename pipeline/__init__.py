"""MLflow-tracked, Optuna-tunable reproductions of two classic TensorFlow MNIST notebooks.

The modules, lowest layer first; a module imports only from layers above it in this list or
from its own package (tests/test_house_rules.py reads this map and holds the code to it):

errors          one-line errors, and redaction of passwords in URLs
architectures   the registry: per arch its builder, presets, notebook accuracy, registered name
run_names       how run names abbreviate values that differ from the preset (lr3e-3, h512)
config          frozen, validated dataclasses and paths: the one home for defaults
tune_config     the configs (and defaults) of a study and of the main job, and the search space
locks, interrupts, provenance, fast_exit
                folder locks; SIGINT/SIGTERM handling; the code's hash and git commit; leaving
                the process without TensorFlow's slow teardown
data            IDX parsing, digest-checked cache and splits
transfer        copying one file from a URL or a folder, with progress and retries
fetch           fetching the four files from mirrors or a source, verifying and caching them
paired          paired comparison of two models on the same images: gain, interval, p-value
keras_runtime   TensorFlow and Keras, imported once and quietly
models, checkpoints, early_stopping
                the Keras models; per-epoch checkpoints; the epoch a validation curve chooses
figures         matplotlib figures
tracking/       the only package importing mlflow (see its map)
callbacks       the Keras callbacks a fit uses
fitting, train_records
                fitting a model inside a run (the train stage's and the trials'); what a train
                run records besides its step metrics
training        the train stage: a config in, a result out
report_tables   the report's tables from a DataFrame of runs
evaluation, downloading, reporting
                the other stages
tuning/         the only package importing optuna (see its map)
workflow        the main job: every stage as a child of one run, identical steps reused
cli/            all a user sees (Typer, rich): nothing imports it
__main__        `python -m pipeline`
serving         the served model's own code, logged with each model: imports mlflow and Keras,
                never the project (the one declared exception to the rules above)
"""

__version__ = "0.1.0"
