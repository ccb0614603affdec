"""SMDL on toy encoders whose right answer is known."""

import numpy as np
import pytest

import mmattr


def test_hot_region_ranked_first(hotbox, gray_image):
    e = mmattr.explain(gray_image, text="the hot box", model=hotbox, division="grid", regions=16,
                      search="exact")
    assert e.n_regions == 16
    assert e.order[0] == 6
    assert sorted(e.order) == list(range(16))
    # The attribution map puts its maximum exactly on the hot cell.
    assert e.attribution.shape == gray_image.shape[:2]
    assert np.all(e.attribution[8:16, 16:24] == e.attribution.max())
    # Exact greedy: N(N+1) search passes (masked-in and -out per candidate) + N regions + 2 ends.
    assert e.forward_passes == 16 * 17 + 16 + 2
    # No vocabulary: the curves are cosines; insertion jumps once the hot cell is in.
    assert e.curve_score == "cosine"
    assert e.insertion_curve[0] == pytest.approx(0.0, abs=1e-6)
    assert e.insertion_curve[1] > 0.95
    assert e.deletion_curve[1] == pytest.approx(0.0, abs=1e-6)
    assert e.insertion_auc > 0.9 and e.deletion_auc < 0.1


@pytest.mark.parametrize("batch_size", [1, 5, 64])
def test_batch_size_does_not_change_result(hotbox, gray_image, batch_size):
    ref = mmattr.explain(gray_image, text="x", model=hotbox, division="grid", regions=16,
                         batch_size=512, search="exact")
    e = mmattr.explain(gray_image, text="x", model=hotbox, division="grid", regions=16,
                       batch_size=batch_size, search="exact")
    assert e.order == ref.order
    np.testing.assert_allclose(e.insertion_curve, ref.insertion_curve, atol=1e-6)
    np.testing.assert_allclose(e.scores, ref.scores, atol=1e-6)
    assert e.forward_passes == ref.forward_passes


def test_batches_bounded_by_batch_size(hotbox, gray_image):
    seen = []
    original = hotbox.encode_images

    def spy(pixels):
        seen.append(pixels.shape[0])
        return original(pixels)

    hotbox.encode_images = spy
    mmattr.explain(gray_image, text="x", model=hotbox, division="grid", regions=9, batch_size=4)
    assert max(seen) <= 4


def test_gain_attribution_is_marginal_gain(hotbox, gray_image):
    e = mmattr.explain(gray_image, text="x", model=hotbox, division="grid", regions=16,
                       attribution="gain")
    gains = np.diff(np.concatenate([[0.0], e.scores]))
    assert e.attribution[10, 18] == pytest.approx(gains[0], rel=1e-5)
