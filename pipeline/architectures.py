"""The architecture registry: one entry per architecture; nothing else lists architectures.

An entry names its builder (a function in pipeline.models, so that this module stays free of
TensorFlow), its presets, the notebook's published accuracy, its registered model name and the
hidden sizes a study searches. The epoch range derives from the presets, so a study's search
space always holds the default preset.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Architecture:
    """One architecture: how to build it, its presets, and what the notebook published."""

    name: str
    builder: str  # a function of pipeline.models: (hidden_size, preset) -> keras.Model
    summary: str
    presets: dict[str, dict[str, Any]]  # preset name -> TrainConfig values
    notebook_accuracy: float
    registered_model: str
    # The hidden sizes a study searches by default, and the widest a range widens to: an
    # LSTM's step grows far faster with its width than an MLP's (bench/widths.py).
    hidden_sizes: tuple[int, int]
    hidden_size_limit: int

    def tuning_epochs(self) -> tuple[int, int]:
        """The default epoch range searched: up to the default preset's own epoch count."""
        return (2, int(self.presets["default"]["epochs"]))


# The notebooks' settings ("seed") and the house's modern choices ("default").
REGISTRY: dict[str, Architecture] = {
    "mlp": Architecture(
        name="mlp",
        builder="build_mlp",
        summary="ReLU MLP with two hidden layers",
        presets={
            "default": dict(learning_rate=0.001, hidden_size=256, epochs=20, batch_size=128),
            "seed": dict(learning_rate=0.001, hidden_size=256, epochs=15, batch_size=100),
        },
        notebook_accuracy=0.9475,
        registered_model="mnist-mlp",
        hidden_sizes=(32, 1024),
        hidden_size_limit=2048,
    ),
    "lstm": Architecture(
        name="lstm",
        builder="build_lstm",
        summary="row-by-row LSTM (28 steps of 28 pixels)",
        presets={
            "default": dict(
                learning_rate=0.003,
                hidden_size=128,
                epochs=18,
                batch_size=64,
                learning_rate_schedule="cosine",
            ),
            "seed": dict(
                learning_rate=0.001,
                hidden_size=128,
                epochs=1000,
                batch_size=128,
                max_steps=10_000,
            ),
        },
        notebook_accuracy=0.9881,
        registered_model="mnist-lstm",
        hidden_sizes=(32, 512),
        hidden_size_limit=1024,
    ),
}


def names() -> tuple[str, ...]:
    """Every architecture, in registry order."""
    return tuple(REGISTRY)


def preset_names() -> tuple[str, ...]:
    """The presets of every entry (the first entry's: tests hold the others to the same)."""
    return tuple(next(iter(REGISTRY.values())).presets)
