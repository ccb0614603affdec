"""mmattr: explain which image regions make a multimodal model match a target.

Core method: Chen et al., "Less is More: Fewer Interpretable Region via Submodular Subset
Selection", ICLR 2024.
"""

from ._version import __version__
from .adapters import Adapter, from_module, list_adapters, load_adapter, register_adapter
from .api import explain
from .audit import audit
from .config import ExplainConfig, load_config
from .distributed import gather_items, is_main_process, shard_items
from .division import DivisionContext, Divider, divider_from_config, list_dividers, register_divider
from .errors import InputError, MmattrError, ModelError
from .explainers import Explainer, list_explainers, register_explainer
from .explanation import Explanation
from .image import load_image
from .evaluate import evaluate_dataset
from .metrics import Metric, TargetScore, auc, list_metrics, register_metric
from .objective import Objective, SMDLObjective, SMDLWeights
from .regions import RegionStack
from .search import Search, SearchResult, list_searches, register_search, search_from_config
from .targets import Target

__all__ = [
    "DivisionContext", "Metric", "TargetScore", "divider_from_config", "evaluate_dataset",
    "from_module", "gather_items", "is_main_process", "list_metrics", "register_metric",
    "search_from_config", "shard_items",
    "__version__", "Adapter", "audit", "Divider", "ExplainConfig", "Explainer", "Explanation", "InputError",
    "MmattrError", "ModelError", "Objective", "RegionStack", "SMDLObjective", "SMDLWeights",
    "Search", "SearchResult", "Target", "auc", "explain", "list_adapters", "list_dividers",
    "list_explainers", "list_searches", "load_adapter", "load_config", "load_image",
    "register_adapter", "register_divider", "register_explainer", "register_search",
]
