"""All a user sees; nothing else in the package imports from here.

app         the Typer app: each command parses options into a config and calls one stage
options     options several commands share
console     progress bars and lines, one-screen summaries
ui_server   `pipeline ui`: the MLflow UI on the project's store
mlproject   the `mlflow run` entry points' adapter (MLproject `name=value` words -> options)
"""
