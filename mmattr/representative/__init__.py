"""Representative Interpretations (Lam et al., ICCV 2021): decision regions of a model's head
shared by groups of reference images, their heat maps and their ranked member images.

Modules: `head` (ψ and G), `boundaries` (eq. 2 samplers), `region` (eq. 4 greedy), `heatmap`
(eq. 5), `ranking` (eq. 6), `cache` (fits on disk), `explainer` (fit / explain), `groups` (per
class or slice, for audits), `outputs` (files per interpretation).
"""

from .boundaries import Boundaries, linearise, sample_boundaries, tie_normals_agree
from .cache import FitCache
from .explainer import Interpretation, RepresentativeInterpretations, RIFit, RIOptions
from .groups import interpretations_for_groups
from .heatmap import channel_weights, region_heatmap
from .ranking import rank_covered, semantic_distance
from .region import Region, greedy_region

__all__ = ["Boundaries", "FitCache", "Interpretation", "RIFit", "RIOptions", "Region",
           "RepresentativeInterpretations", "channel_weights", "greedy_region",
           "interpretations_for_groups", "linearise", "rank_covered", "region_heatmap",
           "sample_boundaries", "semantic_distance", "tie_normals_agree"]
