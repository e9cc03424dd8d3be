"""The only package that imports optuna.

search   the search space (holding the default preset), the study, one MLflow run per trial,
         the summary on the study's parent run and retraining the best
pruning  what a trial reports after each epoch, and the pruners that judge it
storage  opening a study storage, creating its schema, reaping a dead worker's trial
workers  running a worker's trials in fresh child processes, a few at a time
"""
