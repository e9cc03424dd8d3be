"""MLflow-tracked, Optuna-tunable reproductions of two classic TensorFlow MNIST notebooks."""

__version__ = "0.1.0"
