from __future__ import annotations

import numpy as np
import pytest
from ri_testlib import _load, colour_image, t_of


@pytest.fixture(scope="session")
def toy():
    return _load()


@pytest.fixture(scope="session")
def diamond_refs():
    """64 uniform images on an 8×8 grid of t, at least 0.1 off the axes and the facets."""
    ts = [-1.45, -1.05, -0.65, -0.25, 0.15, 0.55, 0.95, 1.35]
    images, points = [], []
    for t1 in ts:
        for t2 in ts:
            r, g = (int(round(255 * (t / 4 + 0.5))) for t in (t1, t2))
            images.append(colour_image(r, g))
            points.append(t_of(r, g))
    return images, np.array(points)
