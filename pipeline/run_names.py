"""How run and model names show a value that differs from its preset (lr3e-3, h512, cosine)."""

from __future__ import annotations

# How a run name shows a value that differs from its preset.
ABBREVIATIONS = {
    "learning_rate": "lr",
    "hidden_size": "h",
    "epochs": "ep",
    "batch_size": "b",
    "seed": "seed",
    "validation_fraction": "val",
    "learning_rate_schedule": "",
    "max_steps": "steps",
}


def compact(value: object) -> str:
    """3e-3 for 0.003, 0.15 for 0.15, 512 for 512, cosine for cosine."""
    if isinstance(value, float):
        mantissa, exponent = f"{value:.3g}", ""
        if value < 0.01:
            mantissa, exponent = f"{value:.2e}".split("e")
            mantissa, exponent = f"{float(mantissa):g}", f"e{int(exponent)}"
        return mantissa + exponent
    return str(value)


def trial(study_name: str, number: int, differences: list[str], pruned: bool = False) -> str:
    """A trial run's name: its study, its number, what differs from the preset (its epochs the
    ones its value is of: the epoch count it chose, or where it was pruned)."""
    return "-".join([study_name, f"trial-{number}", *differences, *(["pruned"] if pruned else [])])
