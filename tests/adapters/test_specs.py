"""Bad model specs are one line in the caller's words (regressions: a local name shadowed the
helper that words the setting, so these raised UnboundLocalError / TypeError)."""

import pytest

import mmattr
from mmattr.errors import MmattrError


@pytest.mark.parametrize("spec, words", [("", "the model spec is empty"),
                                         ("  ", "the model spec is empty"),
                                         ("demo:x", "takes no argument"),
                                         ("demo-classifier:y", "takes no argument")])
def test_bad_specs_are_one_line(spec, words):
    with pytest.raises(MmattrError) as info:
        mmattr.load_adapter(spec)
    assert words in str(info.value) and "\n" not in str(info.value)
    assert "model=" in str(info.value)  # a Python caller sees the keyword
