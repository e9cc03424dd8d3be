"""MLflow-tracked, Optuna-tunable reproductions of two classic TensorFlow MNIST notebooks."""

import os

# TensorFlow's C++ start-up chatter hides the pipeline's own output; users can still override it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"
