"""YAML configs validate into ExplainConfig; bad settings are one clear line."""

from pathlib import Path

import pytest

from mmattr.config import ExplainConfig, from_dict, load_config
from mmattr.errors import InputError
from mmattr.objective import SMDLWeights

REPO = Path(__file__).resolve().parents[1]


def test_shipped_config_is_the_default():
    assert load_config(REPO / "configs" / "explain.yaml") == ExplainConfig()


def test_weights_and_overrides(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("regions: 25\nweights: [0, 0.1, 1, 5]\nscore: probability\n")
    cfg = load_config(f)
    assert cfg.regions == 25 and cfg.score == "probability"
    assert cfg.weights == SMDLWeights(0, 0.1, 1, 5)
    assert cfg.replace(regions=None, division="grid").regions == 25
    assert cfg.replace(division="grid").division == "grid"


@pytest.mark.parametrize("data, message", [
    ({"regoins": 4}, "unknown config setting"),
    ({"regions": "many"}, "must be an integer"),
    ({"regions": 0}, "at least 1"),
    ({"weights": [1, 2]}, "four numbers"),
    ({"weights": {"beauty": 1}}, "unknown weight"),
    ({"attribution": "shap"}, "must be one of"),
])
def test_bad_settings(data, message):
    with pytest.raises(InputError, match=message):
        from_dict(data)


def test_bad_files(tmp_path):
    with pytest.raises(InputError, match="not found"):
        load_config(tmp_path / "none.yaml")
    (tmp_path / "bad.yaml").write_text("regions: [1,\n")
    with pytest.raises(InputError, match="not valid YAML"):
        load_config(tmp_path / "bad.yaml")
