"""The served model: a Keras digit classifier behind MLflow's pyfunc interface.

MLflow logs this file with each model ("models from code"), so a served or loaded model needs
only numpy, keras and mlflow, never this project: keep it free of `pipeline` imports.

It takes a batch of 28x28 images as 0-255 pixel intensities in any numeric dtype (uint8,
float32, float64, JSON numbers), returns the 10 digit probabilities per image, logs a warning
when every pixel is at most 1.0 (images scaled to 0-1 by mistake: the model would see nearly
black images) and prints no progress bar per request. It refuses what it cannot score (another
shape, NaN or infinite values, intensities outside 0-255) with the reason first: a ValueError
through pyfunc, HTTP 400 from `mlflow models serve`. Its logged signature (float32 (-1, 28, 28)
in, (-1, 10) out) is marked as checked here, so MLflow passes requests through unchanged.
"""

from __future__ import annotations

import logging
import warnings

import numpy as np
from mlflow.exceptions import MlflowException
from mlflow.models import set_model
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.pyfunc.model import PythonModel

SIDE = 28
CHUNK = 4096  # images per call of the model: a large request's activations stay bounded
SCALED_WARNING = (
    "all pixel values are <= 1.0: this model expects 0-255 intensities; multiply images "
    "scaled to 0-1 by 255"
)

logger = logging.getLogger("mnist_serving")


class InvalidImages(MlflowException, ValueError):
    """A request the model cannot score, with the reason as its whole message.

    To a pyfunc caller it is a ValueError. `mlflow models serve` answers an MlflowException with
    HTTP 400 and the exception's message as the body's, after putting the whole request in
    front of it; this message keeps the reason alone, so it is what the client reads first.
    """

    def __init__(self, reason: str) -> None:
        self.reason = reason
        MlflowException.__init__(self, reason, error_code=INVALID_PARAMETER_VALUE)

    @property
    def message(self) -> str:
        return self.reason

    @message.setter
    def message(self, _value: str) -> None:
        pass  # the server's prefix (the request) would bury the reason


def as_images(model_input) -> np.ndarray:
    """The input as a float32 (n, 28, 28) batch of 0-255 intensities; InvalidImages otherwise.

    Checked in the input's own dtype (its lowest and highest value): the only copy made is the
    float32 the model reads, and none when the input already is float32.
    """
    values = getattr(model_input, "values", model_input)  # a pandas DataFrame's array
    images = np.asarray(values)
    if images.dtype.kind not in "biuf":  # JSON's nested lists with a None, strings, objects
        try:
            images = np.asarray(values, dtype=np.float64)
        except (TypeError, ValueError):
            raise InvalidImages("expected a batch of 28x28 images of numbers") from None
    if images.ndim == 2 and images.shape[1] == SIDE * SIDE:  # flattened rows of 784 pixels
        images = images.reshape(-1, SIDE, SIDE)
    if images.ndim != 3 or images.shape[1:] != (SIDE, SIDE):
        raise InvalidImages(
            f"expected a batch of 28x28 images (or rows of 784 pixels), got shape {images.shape}"
        )
    if images.size:
        lowest, highest = images.min(), images.max()  # NaN or inf would show in either
        if not (np.isfinite(lowest) and np.isfinite(highest)):
            bad = int((~np.isfinite(images)).sum())
            raise InvalidImages(
                f"expected finite pixel intensities 0-255, got {bad} NaN or infinite values"
            )
        if lowest < 0 or highest > 255:
            raise InvalidImages(
                f"expected pixel intensities 0-255, got values from {lowest:g} to {highest:g}"
            )
    return images.astype(np.float32, copy=False)


def looks_scaled(images: np.ndarray) -> bool:
    """Whether a batch has some lit pixel and none above 1.0 (scaled to 0-1 by mistake)."""
    return images.size > 0 and 0 < float(images.max()) <= 1.0


# MLflow asks PythonModel subclasses for type hints, warning each time the class is made; this
# one takes any numeric dtype on purpose, so that warning would only confuse a server's log.
with warnings.catch_warnings():
    warnings.showwarning = lambda *args, **kwargs: None

    class DigitClassifier(PythonModel):
        """pyfunc predict(images) -> (n, 10) probabilities, from the logged Keras model."""

        def load_context(self, context) -> None:
            import keras

            (path,) = context.artifacts.values()  # the Keras model, logged as the one artifact
            self.model = keras.saving.load_model(path)  # safe mode: no arbitrary code is loaded

        def predict(self, context, model_input, params=None) -> np.ndarray:
            images = as_images(model_input)
            if looks_scaled(images):
                logger.warning(SCALED_WARNING)
            if not len(images):
                return np.zeros((0, 10), dtype=np.float32)
            # The model's compiled step, called directly: Keras' predict() would build a
            # tf.data pipeline and its iterator for every request, most of a small one's time.
            return np.concatenate(
                [
                    np.asarray(self.model.predict_on_batch(images[start : start + CHUNK]))
                    for start in range(0, len(images), CHUNK)
                ]
            )


set_model(DigitClassifier())
