"""mmattr: explain which image regions make a multimodal model match a target.

Core method: Chen et al., "Less is More: Fewer Interpretable Region via Submodular Subset
Selection", ICLR 2024.
"""

from ._version import __version__

# Names resolve on first use (PEP 562), so `import mmattr` and `mmattr --help` load no torch;
# `from mmattr import explain` works as before.
_LAZY: dict[str, str] = {
    **dict.fromkeys(['Adapter', 'from_module', 'list_adapters', 'load_adapter', 'register_adapter'], "adapters"),
    **dict.fromkeys(['explain', 'explain_batch'], "api"),
    **dict.fromkeys(['audit'], "audit"),
    **dict.fromkeys(['ExplainConfig', 'load_config'], "config"),
    **dict.fromkeys(['gather_items', 'is_main_process', 'shard_items'], "distributed"),
    **dict.fromkeys(['Divider', 'DivisionContext', 'divider_from_config', 'list_dividers', 'register_divider'], "division"),
    **dict.fromkeys(['InputError', 'MmattrError', 'ModelError'], "errors"),
    **dict.fromkeys(['evaluate_dataset'], "evaluate"),
    **dict.fromkeys(['Explainer', 'list_explainers', 'register_explainer'], "explainers"),
    **dict.fromkeys(['Explanation'], "explanation"),
    **dict.fromkeys(['load_image'], "image"),
    **dict.fromkeys(['Metric', 'TargetScore', 'auc', 'list_metrics', 'register_metric'], "metrics"),
    **dict.fromkeys(['Objective', 'SMDLObjective', 'SMDLWeights'], "objective"),
    **dict.fromkeys(['RegionStack'], "regions"),
    **dict.fromkeys(['Search', 'SearchResult', 'list_searches', 'register_search', 'search_from_config'], "search"),
    **dict.fromkeys(['Target'], "targets"),
}


def __getattr__(name: str):
    import importlib

    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    try:  # submodules: mmattr.metrics, mmattr.zeroshot, ...
        return importlib.import_module(f".{name}", __name__)
    except ModuleNotFoundError as exc:
        if exc.name != f"{__name__}.{name}":
            raise
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "DivisionContext", "Metric", "TargetScore", "divider_from_config", "evaluate_dataset",
    "from_module", "gather_items", "is_main_process", "list_metrics", "register_metric",
    "search_from_config", "shard_items",
    "__version__", "Adapter", "audit", "Divider", "ExplainConfig", "Explainer", "Explanation", "InputError",
    "MmattrError", "ModelError", "Objective", "RegionStack", "SMDLObjective", "SMDLWeights",
    "Search", "SearchResult", "Target", "auc", "explain", "explain_batch", "list_adapters", "list_dividers",
    "list_explainers", "list_searches", "load_adapter", "load_config", "load_image",
    "register_adapter", "register_divider", "register_explainer", "register_search",
]
