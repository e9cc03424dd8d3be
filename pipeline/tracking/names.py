"""Every tag, param and metric key the project writes to MLflow or reads back, and every Optuna
user attribute it sets or reads, defined once.

The MLflow UI compares runs column by column, so a key spelled twice risks a silent new column:
no other module spells a `pipeline.`, `optuna.` or `best.` key (tests/test_house_rules.py).
A new tracked key is one line here.
"""

from __future__ import annotations

# MLflow's own tags that the project sets or reads.
NOTE = "mlflow.note.content"  # the run's (or experiment's, model's) description in the UI
PARENT_RUN = "mlflow.parentRunId"
GIT_COMMIT = "mlflow.source.git.commit"
GIT_DIRTY = "mlflow.source.git.dirty"

# Tags on every run.
STAGE = "pipeline.stage"  # download | train | evaluate | tune | trial | report | main
ARCH = "pipeline.arch"
DATA_DIGEST = "pipeline.data_digest"
CONFIG_HASH = "pipeline.config_hash"
CODE_HASH = "pipeline.code_hash"
FAILURE_REASON = "pipeline.failure_reason"
HEARTBEAT = "pipeline.heartbeat"  # seconds since the epoch of the run's last beat
HEARTBEAT_INTERVAL = "pipeline.heartbeat_interval"
HOST = "pipeline.host"  # the machine whose process beats for the run

# download
OFFICIAL_DATA = "pipeline.official_data"

# train
MODEL_URI = "pipeline.model_uri"  # the run's final model, models:/MODEL_ID
TUNED_FROM = "pipeline.tuned_from"  # the study whose best configuration the run trained
# A tuned run's baseline: the config hash of its study's preset trial (what `train` makes of the
# start preset), and that preset's name; its test gain is over the model of that config hash.
BASELINE_CONFIG_HASH = "pipeline.baseline_config_hash"
BASELINE_PRESET = "pipeline.baseline_preset"

# evaluate (some also on the train run it scored)
EVALUATED_RUN = "pipeline.evaluated_run"
EVALUATED_MODEL = "pipeline.evaluated_model"
EVALUATED_ON = "pipeline.evaluated_on"  # the digest of the data it was tested on
TEST_SET = "pipeline.test_set"
CHAMPION_DECISION = "pipeline.champion_decision"
VERSION_TEST_ACCURACY = "test_accuracy"  # a registered version's tag
VERSION_TEST_SET = "test_set_digest"  # and the test images it was scored on (their digest)

# tune (the study's parent run) and trial runs
STUDY = "pipeline.study"
PRUNED = "pipeline.pruned"
PRUNED_AT_EPOCH = "pipeline.pruned_at_epoch"
BEST_EPOCH = "pipeline.best_epoch"
OPTUNA_STORAGE = "optuna.storage"
OPTUNA_SAMPLER = "optuna.sampler"
OPTUNA_PRUNER = "optuna.pruner"
OPTUNA_TRIALS = "optuna.trials"
OPTUNA_PRUNED = "optuna.pruned"
OPTUNA_TRIAL_NUMBER = "optuna.trial_number"
OPTUNA_TRIAL_STATE = "optuna.trial_state"
BEST_PREFIX = "best."  # best.learning_rate, ...: the study's best configuration
BEST_TRIAL_NUMBER = "best.trial_number"
START_FROM = "pipeline.start_from"  # the preset a study's trials build on
FOLDS = "pipeline.folds"  # a study's (and its trials') k in k-fold cross-validation
BASELINE_TRIAL = "pipeline.baseline_trial"  # the preset trial the best is compared with
VERDICT = "pipeline.verdict"  # the study's (or evaluation's) paired verdict, in words
PRUNING = "pipeline.pruning"  # a study's pruned trials and the epochs they stopped after, in words
RANGES = "pipeline.ranges"  # a study's search ranges at its end, and how they widened, in words
RANGE_EDGES = "pipeline.range_edges"  # the best's params at an edge of their range, in words
SEARCH_SETTLED = "pipeline.search_settled"  # "false": the best changed in the last quarter

# main
PRESET = "pipeline.preset"  # also the user attribute of a study's preset trial
TUNE = "pipeline.tune"
CACHE_KEY = "pipeline.cache_key"
STEP_PREFIX = "pipeline.step."  # pipeline.step.train_mlp: the run a main job's step used

# Metrics.
BATCH_LOSS = "batch_loss"  # per step (step = global batch index): the batch's own value
BATCH_ACCURACY = "batch_accuracy"  # often 1.0 late in training: one small batch, all right
TRAIN_LOSS = "train_loss"  # per epoch, at its last step: the mean over the epoch's batches
TRAIN_ACCURACY = "train_accuracy"
VAL_LOSS = "val_loss"  # per epoch, at the epoch's last step
VAL_ACCURACY = "val_accuracy"
EPOCH_SECONDS = "epoch_seconds"
SAMPLES_PER_SECOND = "samples_per_second"
TRAIN_SECONDS = "train_seconds"
TEST_LOSS = "test_loss"
TEST_ACCURACY = "test_accuracy"
BEST_VAL_ACCURACY = "best_val_accuracy"
# Paired gains (pipeline.paired), in points like every sentence that states them: the study's
# best over its preset trial on the validation images (tune run; interval and p-value adjusted
# for choosing the best among the complete trials), and a tuned model over its study's preset
# trained the same way, on the same test images (evaluate run).
VAL_GAIN = "val_gain_pt"
VAL_GAIN_LOW = "val_gain_low_pt"  # its 95 % interval
VAL_GAIN_HIGH = "val_gain_high_pt"
VAL_GAIN_P_VALUE = "val_gain_p_value"
VAL_GAIN_UNADJUSTED_P_VALUE = "val_gain_unadjusted_p_value"  # exact McNemar, as if not chosen
TEST_GAIN = "test_gain_pt"
TEST_GAIN_LOW = "test_gain_low_pt"
TEST_GAIN_HIGH = "test_gain_high_pt"
TEST_GAIN_P_VALUE = "test_gain_p_value"  # exact McNemar
PRUNED_SHARE = "pruned_share"  # of a study's finished trials
FOLD_VAL_ACCURACY = "fold_val_accuracy"  # a cross-validated trial's, step = fold (1..K)
CROSS_VAL_ACCURACY = "cross_val_accuracy"  # their mean: the trial's objective

# Dataset names (mlflow.data inputs, and the datasets metrics are measured on).
DATASET_DOWNLOAD = "mnist-train-full"  # the downloaded training file, before any split
DATASET_TRAIN = "mnist-train"  # the training split
DATASET_VALIDATION = "mnist-validation"  # the seeded, stratified validation split
DATASET_TEST = "mnist-test"

# Params besides a TrainConfig's fields (see config.TrainConfig.params).
MODEL_URI_PARAM = "model_uri"  # evaluate
SOURCE_PARAM = "source"  # download
OFFICIAL_PARAM = "official"


# Optuna user attributes. A study's: its MLflow run and what every trial shares.
PARENT_ATTR = "mlflow_parent_run_id"  # the study's MLflow run
ARCH_ATTR = "arch"
SEARCH_ATTR = "search"
START_ATTR = "start_from"
SEED_ATTR = "seed"
FRACTION_ATTR = "validation_fraction"
FOLDS_ATTR = "folds"
DIGEST_ATTR = "data_digest"  # the data its trials are scored on (data.Dataset.digest)
RANGES_ATTR = "ranges"  # the search ranges trials sample from now: {param: [low, high]}
WIDENED_ATTR = "widened"  # each widening: [before trial, param, [low, high] before, after]
# A trial's (and PRESET, on the study's preset trial).
RUN_ATTR = "mlflow_run_id"  # the trial's MLflow run
OWNER_ATTR = "owner"  # the trial's process: boot id/pid namespace/pid/start time
WORKER_ATTR = "worker"  # host:pid of the `pipeline tune` process
PROCESS_ATTR = "process"  # pid of its child that ran the trial (see tuning.workers)
EPOCHS_ATTR = "epochs"  # the epoch count a trial's learning curve chose
TRAINED_ATTR = "epochs_trained"  # the epochs a complete trial trained
PRUNED_AT_ATTR = "pruned_at_epoch"  # the epochs a pruned trial trained
RSS_ATTR = "rss_mb"  # the trial process's resident memory after the trial, in MB
# A trial's system attribute: which validation images its objective model got right
# (paired.pack), the evidence a study's verdict compares. In the study's storage, beside the
# value it explains, so that any worker reads it in one query, with no artifact download per
# trial; a system attribute, so that optuna-dashboard's trial pages leave it out.
VAL_CORRECT_ATTR = "val_correct"
# And, where its curve chose the epoch count, the same after every other epoch count it chose
# among ({"7": packed, ...}): the epoch was chosen on the same images, so the verdict counts
# those models among the candidates the best was picked from.
VAL_CORRECT_EPOCHS_ATTR = "val_correct_other_epochs"


def best(param: str) -> str:
    """The study run's tag holding its best configuration's value of param."""
    return BEST_PREFIX + param


def file_md5(stem: str) -> str:
    """The download run's param holding a file's MD5 (stem: train-images-idx3-ubyte, say)."""
    return f"md5.{stem}"


def file_official(stem: str) -> str:
    """The download run's param saying whether a file is the official one."""
    return f"official.{stem}"


def image_count(split: str) -> str:
    """The download run's metric counting a split's images (train, test)."""
    return f"{split}_count"


def step(name: str) -> str:
    """The main run's tag naming the run its step (say "train mlp") used."""
    return STEP_PREFIX + name.replace(" ", "_")


GAINS = {
    "val": (VAL_GAIN, VAL_GAIN_LOW, VAL_GAIN_HIGH, VAL_GAIN_P_VALUE),
    "test": (TEST_GAIN, TEST_GAIN_LOW, TEST_GAIN_HIGH, TEST_GAIN_P_VALUE),
}


def gains(split: str, points: tuple[float, float, float, float]) -> dict[str, float]:
    """The four metrics of a paired comparison on split "val" or "test": (gain, low, high) in
    points and the p-value (paired.Comparison.points())."""
    return dict(zip(GAINS[split], points, strict=True))


def column(kind: str, key: str) -> str:
    """The column of mlflow.search_runs' DataFrame holding key: column("tags", ARCH)."""
    return f"{kind}.{key}"
