"""Every PIL mode becomes the right 8-bit RGB: known answers per mode, from files and arrays."""

import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from mmattr.errors import InputError
from mmattr.image import downscale, load_image, to_uint8


def _roundtrip(tmp_path, img: Image.Image, name: str, **save) -> np.ndarray:
    path = tmp_path / name
    img.save(path, **save)
    return load_image(path)


def test_16bit_gray_png_is_scaled_not_clipped(tmp_path):
    # 0, 100·257, 65535 must read as 0, 100, 255 (the old reader clipped: all white).
    values = np.array([[0, 100 * 257, 65535], [257, 128 * 257, 200 * 257]], np.uint16)
    img = Image.fromarray(values)
    assert img.mode == "I;16"
    arr = _roundtrip(tmp_path, img, "g16.png")
    assert Image.open(tmp_path / "g16.png").mode == "I;16"
    assert arr.dtype == np.uint8 and arr.shape == (2, 3, 3)
    assert arr[..., 0].tolist() == [[0, 100, 255], [1, 128, 200]]
    assert (arr[..., 0] == arr[..., 2]).all()


def test_16bit_big_endian_and_int32_gray():
    big = np.array([[0, 128 * 257], [65535, 257]], ">u2")
    img = Image.frombytes("I;16B", (2, 2), big.tobytes())
    assert load_image(img)[..., 0].tolist() == [[0, 128], [255, 1]]
    wide = Image.fromarray(np.array([[0, 65535], [128 * 257, 0]], np.int32), "I")
    assert load_image(wide)[..., 0].tolist() == [[0, 255], [128, 0]]
    narrow = Image.fromarray(np.array([[0, 77], [255, 3]], np.int32), "I")  # 8-bit values in I
    assert load_image(narrow)[..., 0].tolist() == [[0, 77], [255, 3]]


def test_16bit_rgb_png(tmp_path):
    import cv2

    rgb = np.zeros((2, 2, 3), np.uint16)
    rgb[0, 0] = (65535, 128 * 257, 0)
    rgb[1, 1] = (257, 0, 65535)
    path = tmp_path / "rgb16.png"
    cv2.imwrite(str(path), rgb[..., ::-1])  # cv2 writes BGR
    arr = load_image(path)
    assert arr[0, 0].tolist() == [255, 128, 0] and arr[1, 1].tolist() == [1, 0, 255]


def test_float_modes(tmp_path):
    unit = Image.fromarray(np.array([[0.0, 0.5], [1.0, 0.25]], np.float32), "F")
    assert _roundtrip(tmp_path, unit, "f.tif")[..., 1].tolist() == [[0, 128], [255, 64]]
    byte_range = Image.fromarray(np.array([[0.0, 77.0], [255.0, 3.0]], np.float32), "F")
    assert load_image(byte_range)[..., 0].tolist() == [[0, 77], [255, 3]]
    with pytest.raises(InputError, match="float values"):
        load_image(Image.fromarray(np.array([[0.0, 4000.0], [1, 2]], np.float32), "F"))
    with pytest.raises(InputError, match="NaN"):
        load_image(Image.fromarray(np.array([[0.0, np.nan], [1, 2]], np.float32), "F"))


def test_palette_with_transparency(tmp_path):
    pal = Image.new("P", (3, 2))
    pal.putpalette([0, 0, 0, 255, 0, 0, 0, 0, 255] + [0] * (253 * 3))
    pal.putdata([1, 2, 0, 0, 1, 2])
    pal.info["transparency"] = 2  # blue is the transparent index
    arr = _roundtrip(tmp_path, pal, "p.png", transparency=2)
    assert arr[0].tolist() == [[255, 0, 0], [0, 0, 0], [0, 0, 0]]  # transparent → black
    assert arr[1].tolist() == [[0, 0, 0], [255, 0, 0], [0, 0, 0]]
    opaque = Image.new("P", (2, 2))
    opaque.putpalette([10, 20, 30] + [0] * 765)
    assert _roundtrip(tmp_path, opaque, "po.png")[0, 0].tolist() == [10, 20, 30]


def test_cmyk(tmp_path):
    cmyk = Image.new("CMYK", (2, 2), (255, 0, 0, 0))  # pure cyan
    assert _roundtrip(tmp_path, cmyk, "c.tif")[0, 0].tolist() == [0, 255, 255]
    cmyk.putpixel((1, 1), (0, 0, 0, 255))  # pure black ink
    arr = load_image(cmyk)
    assert arr[1, 1].tolist() == [0, 0, 0] and arr[0, 0].tolist() == [0, 255, 255]


def test_alpha_modes(tmp_path):
    la = Image.fromarray(np.array([[[200, 0], [200, 255]], [[10, 255], [90, 128]]], np.uint8), "LA")
    arr = _roundtrip(tmp_path, la, "la.png")
    assert arr[..., 0].tolist() == [[0, 200], [10, 45]]
    rgba = Image.fromarray(np.array([[[200, 100, 50, 128], [1, 2, 3, 255]]], np.uint8).repeat(2, 0), "RGBA")
    assert _roundtrip(tmp_path, rgba, "rgba.png")[0].tolist() == [[100, 50, 25], [1, 2, 3]]
    assert load_image(Image.new("La", (2, 2), (200, 255)))[0, 0].tolist() == [200, 200, 200]


def test_exif_orientation(tmp_path):
    # Stored 2 wide × 3 high, top-left pixel red; orientation 6 = display rotated 90° clockwise.
    stored = np.zeros((3, 2, 3), np.uint8)
    stored[0, 0] = (255, 0, 0)
    img = Image.fromarray(stored)
    exif = img.getexif()
    exif[0x0112] = 6
    path = tmp_path / "rot.png"
    img.save(path, exif=exif)
    arr = load_image(path)
    assert arr.shape == (2, 3, 3)  # shown 3 wide × 2 high
    assert arr[0, 2].tolist() == [255, 0, 0]  # the stored top-left is now top-right
    assert int((arr.sum(axis=2) > 0).sum()) == 1


def test_bilevel_and_other_colour_spaces():
    one = Image.fromarray(np.array([[0, 255], [255, 0]], np.uint8)).convert("1")
    assert load_image(one)[..., 0].tolist() == [[0, 255], [255, 0]]
    base = Image.new("RGB", (2, 2), (200, 100, 50))
    for mode in ("RGBX", "HSV", "CMYK"):
        assert load_image(base.convert(mode))[0, 0].tolist() == [200, 100, 50], mode
    ycc = load_image(base.convert("YCbCr"))[0, 0]
    assert np.abs(ycc.astype(int) - [200, 100, 50]).max() <= 2


def test_arrays_by_type():
    u16 = np.array([[0, 65535], [128 * 257, 257]], np.uint16)
    assert load_image(u16)[..., 0].tolist() == [[0, 255], [128, 1]]
    rgb16 = np.stack([u16, u16 // 2, np.zeros_like(u16)], axis=2)
    assert load_image(rgb16)[0, 1].tolist() == [255, 127, 0]
    assert load_image(np.array([[0.0, 0.5], [1.0, 1.0]]))[0, 1, 0] == 128
    assert load_image(np.array([[0, 300], [5, 5]], np.int64))[0, 1, 0] == 1  # > 255: 16-bit
    assert load_image(np.array([[0, 200], [5, 5]], np.int64))[0, 1, 0] == 200
    assert load_image(np.ones((2, 2), bool))[0, 0, 0] == 255
    with pytest.raises(InputError, match="integer values"):
        load_image(np.array([[-1, 2], [3, 4]], np.int32))
    with pytest.raises(InputError, match="float values"):
        load_image(np.full((2, 2), 300.0))
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[..., :3] = 200
    rgba[0, 0, 3] = 255
    assert load_image(rgba)[..., 0].tolist() == [[200, 0], [0, 0]]
    assert to_uint8(np.array([65535], np.uint16)).tolist() == [255]


def _png_header_only(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def test_decompression_bomb_is_one_line(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(_png_header_only(100000, 100000))
    with pytest.raises(InputError, match="too large to decode safely") as info:
        load_image(path)
    assert "\n" not in str(info.value) and "10,000 megapixels" in str(info.value)


def test_bad_files_more(tmp_path):
    (tmp_path / "zero.png").write_bytes(b"")
    with pytest.raises(InputError, match="not an image"):
        load_image(tmp_path / "zero.png")
    Image.new("RGB", (1, 1)).save(tmp_path / "one.png")
    with pytest.raises(InputError, match="too small"):
        load_image(tmp_path / "one.png")


def test_downscale():
    img = np.zeros((3000, 4000, 3), np.uint8)
    img[:1500] = 255
    small = downscale(img, 1024)
    assert small.shape == (768, 1024, 3)
    assert small[:380].min() == 255 and small[390:].max() == 0
    assert downscale(img[:100, :100], 1024) is not None
    tiny = img[:100, :100]
    assert downscale(tiny, 1024) is tiny
