"""Every division covers every pixel exactly once, respects --regions, and the prior and SAM
post-processing give their known answers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mmattr.config import ExplainConfig
from mmattr.datasets.shapes import render_scene
from mmattr.explainers.prior import PriorDivider
from mmattr.division import (DivisionContext, divider_from_config, make_divider,
                             masks_to_labels, prior_labels)
from mmattr.errors import InputError


@pytest.fixture(scope="module")
def scene() -> np.ndarray:
    return render_scene(1, size=96).image


def _check_partition(labels: np.ndarray, image: np.ndarray, bound: int) -> int:
    assert labels.shape == image.shape[:2] and labels.dtype == np.int32
    n = int(labels.max()) + 1
    # Labels 0..n-1, each used: one label per pixel means every pixel is in exactly one region.
    assert labels.min() == 0 and set(np.unique(labels)) == set(range(n))
    assert 1 <= n <= bound
    return n


@pytest.mark.parametrize("spec", ["slico", "seeds", "grid"])
@pytest.mark.parametrize("regions", [9, 25, 49])
def test_image_divisions_cover_and_bound(scene, spec, regions):
    n = _check_partition(make_divider(spec, regions).divide(scene), scene, regions)
    assert n >= regions // 3  # about the asked-for count, not a degenerate split


def test_seeds_matches_opencv(scene):
    import cv2

    seeds = cv2.ximgproc.createSuperpixelSEEDS(96, 96, 3, 49, 3)
    seeds.iterate(np.ascontiguousarray(scene[..., ::-1]), 10)
    ref = seeds.getLabels()
    ours = make_divider("seeds", 49).divide(scene)
    # Same partition up to label names (OpenCV gives at most the requested count here).
    _, ref_ids = np.unique(ref, return_inverse=True)
    assert len(np.unique(ref)) <= 49
    assert np.array_equal(ours.ravel(), ref_ids.ravel())


def test_masks_to_labels_known_answer():
    h = w = 100
    big = np.zeros((h, w), bool); big[:60] = True           # top 60 rows
    small = np.zeros((h, w), bool); small[50:70, :50] = True  # overlaps big, painted on top
    tiny = np.zeros((h, w), bool); tiny[99, 99] = True        # 1 px < 0.05% of 10,000 → dropped
    labels = masks_to_labels([big, small, tiny])
    assert labels[0, 0] == 0                 # big
    assert labels[55, 10] == 1               # overlap goes to the smaller mask
    assert labels[55, 80] == 0
    assert labels[65, 10] == 1
    assert labels[80, 80] == 3 and labels[99, 99] == 3  # leftover + dropped → one more region
    assert set(np.unique(labels)) == {0, 1, 3}


def test_prior_labels_known_answer():
    # Saliency increasing with the column: a 4×4 grid, groups of 4 → one region per column,
    # region 0 the most salient (rightmost) column.
    sal = np.tile(np.arange(8, dtype=float), (8, 1))
    labels = prior_labels(sal, grid=4, group=4)
    expected = np.repeat(np.array([3, 2, 1, 0]), 2)[None].repeat(8, 0)
    assert np.array_equal(labels, expected)


def test_prior_division_runs_baseline_and_orders_by_saliency(hotbox, gray_image):
    cfg = ExplainConfig(division="prior:hsic", regions=49, prior_grid=4, prior_group=2)
    divider = divider_from_config(cfg)
    labels = divider.divide(gray_image, DivisionContext(hotbox, _text_target(), cfg))
    n = _check_partition(labels, gray_image, 49)
    assert n == 8 and divider.forward_passes == 1536
    # The hot box (4×4 grid cell row 1, col 2) is in the most salient region.
    assert np.all(labels[8:16, 16:24] == 0)


def test_prior_respects_regions(hotbox, gray_image):
    cfg = ExplainConfig(division="prior:rise", regions=10)
    divider = divider_from_config(cfg)
    assert divider.options["group"] == 10  # 100 cells, at most 10 regions
    _check_partition(divider.divide(gray_image, DivisionContext(hotbox, _text_target(), cfg)),
                     gray_image, 10)


def test_prior_errors():
    with pytest.raises(InputError, match="baseline"):
        make_divider("prior:smdl", 49)
    with pytest.raises(InputError, match="unknown method"):
        make_divider("prior:nope", 49)
    with pytest.raises(InputError, match="needs the model"):
        PriorDivider(49, method="hsic").divide(np.zeros((8, 8, 3), np.uint8))


def test_sam_needs_checkpoint():
    with pytest.raises(InputError, match="sam_checkpoint="):
        divider_from_config(ExplainConfig(division="sam"))
    with pytest.raises(InputError, match="not found"):
        divider_from_config(ExplainConfig(division="sam", sam_checkpoint="/nonexistent.pth")
                            ).divide(np.zeros((16, 16, 3), np.uint8))


@pytest.fixture(scope="session")
def sam_checkpoint(tmp_path_factory):
    sa = pytest.importorskip("segment_anything")
    torch.manual_seed(0)
    model = sa.sam_model_registry["vit_b"]()
    path = tmp_path_factory.mktemp("sam") / "sam_vit_b_random.pth"
    torch.save(model.state_dict(), path)
    return path


@pytest.mark.slow
def test_sam_random_vit_b_covers_and_bounds(sam_checkpoint, scene):
    cfg = ExplainConfig(division="sam", sam_checkpoint=str(sam_checkpoint), regions=12)
    divider = divider_from_config(cfg)
    divider.options["points_per_side"] = 4  # random weights: the path, not the masks, is tested
    _check_partition(divider.divide(scene), scene, 12)


def _text_target():
    from mmattr.targets import Target

    return Target.from_text("the hot box")
