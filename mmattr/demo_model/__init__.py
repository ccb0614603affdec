"""Tiny CLIP trained on the synthetic shapes world; ships with the package so demos need no download."""

from pathlib import Path

DEMO_MODEL_DIR = Path(__file__).parent / "weights"

__all__ = ["DEMO_MODEL_DIR"]
