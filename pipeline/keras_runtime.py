"""Imports TensorFlow and Keras once, without TensorFlow's C++ start-up chatter on stderr."""

from __future__ import annotations

import os


def _import_quietly():
    # TensorFlow's C++ start-up chatter hides the pipeline's own output; users can override it.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # TF 2.21 logs oneDNN/CUDA notices through absl before TF_CPP_MIN_LOG_LEVEL applies, and
    # device set-up reports the missing GPU as an error; neither helps a user of a CPU pipeline.
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        import tensorflow

        tensorflow.constant(0)  # device initialisation happens here
        return tensorflow
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


tf = _import_quietly()

import keras  # noqa: E402

keras.config.disable_interactive_logging()  # the stages draw their own progress bars

__all__ = ["keras", "tf"]
