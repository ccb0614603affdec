"""Faithfulness and localisation metrics (METHOD.md section 3).

Each metric is a `Metric` subclass with one `evaluate(explanation, context)` method, registered
by name (`list_metrics()`), and also a plain function on arrays:
`perturbation_curve`, `highest_confidence`, `average_drop_increase`, `road_curve`,
`noisy_linear_impute`, `occlusion_confidence`, `pointing_game`, `energy_pointing_game`,
`top_k_iou`.

Ref. Petsiuk et al., "RISE", BMVC 2018 (insertion and deletion).
"""

from .base import (METRICS, EvalContext, Metric, MetricSkipped, ScoreFn, auc, list_metrics,
                   make_metric, mean_curve, register_metric)
from .curves import (BUDGETS, FILLS, average_drop_increase, fill_image, highest_confidence,
                     perturbation_curve, pixel_rank)
from .localisation import energy_pointing_game, pointing_game, top_area, top_k_iou
from .road import (LERF_PERCENTAGES, MORF_PERCENTAGES, noisy_linear_impute, occlusion_confidence,
                   road_curve)
from .scoring import SCORES, TargetScore, image_tensor
from .words import keywords_first

__all__ = [
    "METRICS", "EvalContext", "Metric", "MetricSkipped", "ScoreFn", "auc", "list_metrics",
    "make_metric", "mean_curve", "register_metric", "BUDGETS", "FILLS", "average_drop_increase",
    "fill_image", "highest_confidence", "perturbation_curve", "pixel_rank",
    "energy_pointing_game", "pointing_game", "top_area", "top_k_iou", "LERF_PERCENTAGES",
    "MORF_PERCENTAGES", "noisy_linear_impute", "occlusion_confidence", "road_curve", "SCORES",
    "TargetScore", "image_tensor", "keywords_first",
]
