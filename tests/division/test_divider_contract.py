"""One contract for every registered division (`DIVIDERS`), built as `mmattr explain` builds
it (`divider_from_config` over an ExplainConfig): int32 labels 0..N-1 covering the image, every
region non-empty, N within `regions`, the same labels twice and for any batch size, one-line
`InputError`s on bad counts. A newly registered division is picked up from the registry; one
that cannot run here must be listed in `SKIPPED` with the reason."""

from __future__ import annotations

import numpy as np
import pytest

from mmattr.config import ExplainConfig, GivenArrays
from mmattr.division import DIVIDERS, DivisionContext, Divider, divider_from_config
from mmattr.errors import InputError
from mmattr.fill import digest
from mmattr.targets import Target

#: registered divisions the default run cannot build, each with the reason
SKIPPED = {
    "sam": "needs a segment-anything checkpoint file (--sam-checkpoint), which the tests do not "
           "ship; tests/division/test_dividers.py::test_sam_random_vit_b_covers_and_bounds runs "
           "it on a random ViT-B under -m slow",
}
#: the --division value for names that take an argument (``prior:<method>``)
SPECS = {"prior": "prior:hsic"}
#: divisions given as an array from Python (``division=<label map>``): the array for an image
ARRAYS = {"labels": lambda image: ((np.arange(image.shape[0])[:, None] // 5) * 16
                                   + np.arange(image.shape[1])[None, :] // 5)}
REGIONS = 12


def _cases():
    return [pytest.param(n, marks=pytest.mark.skip(reason=SKIPPED[n])) if n in SKIPPED else n
            for n in DIVIDERS.names()]


def _config(name: str, **settings) -> ExplainConfig:
    return ExplainConfig(**{"division": SPECS.get(name, name), "regions": REGIONS,
                            "device": "cpu", **settings})


def _divide(name, image, adapter, **settings) -> np.ndarray:
    if name in ARRAYS:  # as `mmattr.explain(..., division=array)` sets it
        labels = ARRAYS[name](image)
        settings = {"division": f"{name}:{digest(labels)}",
                    "arrays": GivenArrays(labels=labels), **settings}
    cfg = _config(name, **settings)
    context = DivisionContext(adapter, Target.from_text("a red disc"), cfg)
    return divider_from_config(cfg).divide(image, context)


def test_every_skip_names_a_registered_division():
    assert set(SKIPPED) <= set(DIVIDERS.names()) and set(SPECS) <= set(DIVIDERS.names())
    assert all(reason.strip() for reason in SKIPPED.values())


@pytest.mark.parametrize("name", _cases())
def test_labels_cover_the_image(name, toy_cnn, toy_scene):
    divider = divider_from_config(_config(name))
    assert isinstance(divider, Divider) and divider.regions == REGIONS
    labels = _divide(name, toy_scene, toy_cnn)
    assert labels.shape == toy_scene.shape[:2] and labels.dtype == np.int32
    n = int(labels.max()) + 1
    # one label per pixel, 0..N-1, each used: every pixel in exactly one non-empty region
    assert labels.min() == 0 and np.bincount(labels.ravel()).min() > 0
    assert 1 <= n <= REGIONS
    assert n >= 2  # a 40×48 image with structure is split, not left whole
    settings = divider.settings()
    assert settings["regions"] == REGIONS


@pytest.mark.parametrize("name", _cases())
def test_deterministic_and_independent_of_batch_size(name, toy_cnn, toy_scene):
    ref = _divide(name, toy_scene, toy_cnn, batch_size=256)
    np.testing.assert_array_equal(_divide(name, toy_scene, toy_cnn, batch_size=256), ref)
    np.testing.assert_array_equal(_divide(name, toy_scene, toy_cnn, batch_size=1), ref)


@pytest.mark.parametrize("name", _cases())
def test_one_region_and_tiny_images(name, toy_cnn, toy_scene):
    one = _divide(name, toy_scene, toy_cnn, regions=1)
    assert one.dtype == np.int32 and not one.any()
    tiny = toy_scene[:3, :4]
    labels = _divide(name, tiny, toy_cnn, regions=12)  # as many regions as pixels
    assert labels.shape == (3, 4) and 1 <= labels.max() + 1 <= 12
    assert set(np.unique(labels)) == set(range(labels.max() + 1))


@pytest.mark.parametrize("name", _cases())
def test_bad_counts_are_one_line_input_errors(name, toy_cnn, toy_scene):
    with pytest.raises(InputError) as info:
        DIVIDERS.get(name)(regions=0, **({"method": "hsic"} if name == "prior" else {}))
    assert "\n" not in str(info.value)
    with pytest.raises(InputError, match="more than the image") as info:
        _divide(name, toy_scene[:3, :3], toy_cnn, regions=10)
    assert "\n" not in str(info.value)
    if divider_from_config(_config(name)).needs_context:
        with pytest.raises(InputError) as info:
            divider_from_config(_config(name)).divide(toy_scene)
        assert "\n" not in str(info.value)
