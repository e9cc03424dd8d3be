"""All a user sees; nothing else in the package imports from here.

app             the Typer app: registers the commands, turns every expected failure into a line
stage_commands  download, train, evaluate
tune_command    tune
job_commands    main, report
store_commands  ui, reap, init-stores
options         the options several commands share (Annotated types) and "not given"
edge            what a command sets up once for its process: the tracking store, system metrics
console         progress bars and lines, one-screen summaries, the UI's links
ui_server       `pipeline ui`: the MLflow UI on the project's store
mlproject       the `mlflow run` entry points' adapter (MLproject `name=value` words -> options)
"""
