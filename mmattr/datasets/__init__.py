"""Synthetic datasets with ground-truth object masks."""

from mmattr.datasets.shapes import (COLORS, SHAPES, Scene, captions, export_dataset, load_manifest,
                                    render_scene)

__all__ = ["COLORS", "SHAPES", "Scene", "captions", "render_scene", "export_dataset",
           "load_manifest"]
