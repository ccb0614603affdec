"""Every way an image file can be wrong gives one clear InputError."""

import numpy as np
import pytest
from PIL import Image

from mmattr.errors import InputError
from mmattr.image import load_image


def test_modes_become_rgb(tmp_path):
    gray = Image.fromarray(np.full((8, 9), 77, np.uint8), "L")
    rgba = Image.fromarray(np.dstack([np.full((8, 9, 3), 200, np.uint8),
                                      np.full((8, 9), 0, np.uint8)]), "RGBA")
    pal = Image.fromarray(np.full((8, 9, 3), 30, np.uint8)).convert("P")
    for name, img in (("g.png", gray), ("a.png", rgba), ("p.png", pal)):
        img.save(tmp_path / name)
        arr = load_image(tmp_path / name)
        assert arr.shape == (8, 9, 3) and arr.dtype == np.uint8
    assert load_image(tmp_path / "g.png")[0, 0].tolist() == [77, 77, 77]
    assert load_image(tmp_path / "a.png")[0, 0].tolist() == [0, 0, 0]  # transparent → black


def test_bad_files(tmp_path):
    with pytest.raises(InputError, match="not found"):
        load_image(tmp_path / "missing.png")
    (tmp_path / "notes.png").write_text("hello")
    with pytest.raises(InputError, match="not an image"):
        load_image(tmp_path / "notes.png")
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(tmp_path / "full.png")
    data = (tmp_path / "full.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="truncated or corrupt"):
        load_image(tmp_path / "cut.png")
    with pytest.raises(InputError, match="not a file"):
        load_image(tmp_path)


def test_arrays():
    assert load_image(np.zeros((4, 5), np.uint8)).shape == (4, 5, 3)
    assert load_image(np.ones((4, 5, 3), np.float32))[0, 0, 0] == 255
    with pytest.raises(InputError):
        load_image(np.zeros((4, 5, 2)))
