"""The registry's builders as functional Keras models, and their optimizer (no tracking here)."""

from __future__ import annotations

import sys

from pipeline.config import IMAGE_SIDE, NUM_CLASSES, TrainConfig, architecture
from pipeline.keras_runtime import keras

layers = keras.layers


def _initializers(preset: str) -> dict:
    """The seed preset draws weights and biases from N(0, 1), as the notebooks did; the default
    keeps Keras' Glorot-uniform kernels and zero biases."""
    if preset != "seed":
        return {}
    return dict(
        kernel_initializer=keras.initializers.RandomNormal(mean=0.0, stddev=1.0),
        bias_initializer=keras.initializers.RandomNormal(mean=0.0, stddev=1.0),
    )


def _inputs() -> tuple[keras.KerasTensor, keras.KerasTensor]:
    """Raw 28x28 images (0-255) in; scaled to [0, 1] inside the model, as the notebooks' loader."""
    images = keras.Input(shape=(IMAGE_SIDE, IMAGE_SIDE), dtype="float32", name="images")
    return images, layers.Rescaling(1.0 / 255.0, name="scale")(images)


def build_mlp(hidden_size: int, preset: str = "default") -> keras.Model:
    """Flatten -> Dense(relu) -> Dense(relu) -> Dense(10) logits."""
    init = _initializers(preset)  # every layer, in the seed preset
    images, scaled = _inputs()
    hidden = layers.Flatten(name="flatten")(scaled)
    hidden = layers.Dense(hidden_size, activation="relu", name="hidden_1", **init)(hidden)
    hidden = layers.Dense(hidden_size, activation="relu", name="hidden_2", **init)(hidden)
    logits = layers.Dense(NUM_CLASSES, name="logits", **init)(hidden)
    return keras.Model(images, logits, name="mlp")


def build_lstm(hidden_size: int, preset: str = "default") -> keras.Model:
    """28 timesteps of 28 pixels -> LSTM(hidden) -> Dense(10) logits."""
    # Forget-gate bias 1.0 in both presets; the notebook drew only the output layer from N(0, 1).
    init = _initializers(preset)
    images, scaled = _inputs()
    hidden = layers.LSTM(hidden_size, unit_forget_bias=True, name="lstm")(scaled)
    logits = layers.Dense(NUM_CLASSES, name="logits", **init)(hidden)
    return keras.Model(images, logits, name="lstm")


def build_model(config: TrainConfig) -> keras.Model:
    """The architecture config names (its registry entry's builder), with its preset's init."""
    builder = getattr(sys.modules[__name__], architecture(config.arch).builder)
    return builder(config.hidden_size, config.preset)


def build_optimizer(config: TrainConfig, total_steps: int) -> keras.optimizers.Optimizer:
    """Adam (config.OPTIMIZER; the seed preset uses the notebooks' TF1 epsilon of 1e-8), with a
    constant learning rate or one that decays along a cosine to zero over total_steps."""
    epsilon = 1e-8 if config.preset == "seed" else 1e-7
    learning_rate = config.learning_rate
    if config.learning_rate_schedule == "cosine":
        learning_rate = keras.optimizers.schedules.CosineDecay(config.learning_rate, total_steps)
    return keras.optimizers.Adam(
        learning_rate=learning_rate, beta_1=0.9, beta_2=0.999, epsilon=epsilon
    )


def compile_model(model: keras.Model, config: TrainConfig, total_steps: int) -> keras.Model:
    """Compile with the config's optimizer, cross-entropy on logits and accuracy."""
    model.compile(
        optimizer=build_optimizer(config, total_steps),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )
    return model


def serving_model(model: keras.Model) -> keras.Model:
    """The trained logits model with a softmax on top: what is logged, served and evaluated."""
    probabilities = layers.Softmax(name="probabilities")(model.output)
    return keras.Model(model.input, probabilities, name=f"{model.name}_serving")
