"""The only package that imports optuna.

study    the study: a worker's trials and the summary on the study's parent run
opening  creating a study seeded with its preset, or joining one made alike
baseline the preset trial's configuration (the baseline of every claim), the tuned one, and
         retraining both
verdict  what a study found: its best against its preset trial, image by image; pruning
search   the search space a trial samples (holding the start preset) and its sampler
trials   what a trial process runs: the objective (one MLflow run per trial) and a worker's
         share of trials
evidence a trial's fits (one, or one per cross-validation fold): curves and per-image answers
pruning  what a trial reports after each epoch, and the pruners that judge it
storage  opening a study storage, creating its schema, reaping a dead worker's trial
journal  a journal-file storage whose appends are all or nothing (no partial line)
owners   which process runs a trial; failing a journal study's trials whose process ended
workers  running a worker's trials in fresh child processes, a few at a time
plots    Optuna's own plots of a study and its trials table, for its MLflow run
"""
