"""SLICO and grid divisions: every pixel in exactly one region, the count bounded."""

import numpy as np
import pytest

from mmattr.datasets.shapes import render_scene
from mmattr.division import grid_shape, make_divider, merge_smallest
from mmattr.errors import InputError


@pytest.mark.parametrize("name", ["slico", "grid"])
@pytest.mark.parametrize("regions", [9, 25, 49, 100])
def test_labels_cover_and_respect_bound(name, regions):
    image = render_scene(3, size=224).image
    labels = make_divider(name, regions).divide(image)
    assert labels.shape == image.shape[:2] and labels.dtype == np.int32
    n = labels.max() + 1
    assert set(np.unique(labels)) == set(range(n))  # consecutive, every label used
    assert n <= regions
    assert n >= 0.6 * regions  # "approximately": not far below the request


def test_slico_reference_default_about_49():
    labels = make_divider("slico", 49).divide(render_scene(5, size=224).image)
    assert 35 <= labels.max() + 1 <= 49


def test_grid_exact_cells():
    labels = make_divider("grid", 16).divide(np.zeros((32, 32, 3), np.uint8))
    assert labels[0, 0] == 0 and labels[8, 16] == 6 and labels[31, 31] == 15
    assert grid_shape(224, 448, 50) == (5, 10)


def test_merge_smallest_keeps_cover():
    labels = np.arange(36).reshape(6, 6) % 12
    merged = merge_smallest(labels, 5)
    assert merged.max() + 1 == 5 and merged.shape == labels.shape


def test_more_regions_than_pixels():
    with pytest.raises(InputError, match="more than the image"):
        make_divider("grid", 100).divide(np.zeros((5, 5, 3), np.uint8))
