"""The region stack's hot path: indexed composition, chunk size from free memory, OOM halving."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import mmattr
from mmattr.division import make_divider
from mmattr.regions import RegionStack


def _stack(adapter, image, batch_size=64, n=16) -> RegionStack:
    return RegionStack(image, make_divider("grid", n).divide(image), adapter, batch_size=batch_size)


def test_indexed_composition_equals_matrix_product(hotbox, gray_image):
    stack = _stack(hotbox, gray_image)
    base = torch.zeros(16)
    base[[1, 6, 9]] = 1.0
    cands = torch.tensor([0, 2, 15])
    rows = base.repeat(3, 1)
    rows[torch.arange(3), cands] = 1.0
    for got, want in zip(stack.compose_add(base, cands), stack.compose(rows)):
        torch.testing.assert_close(got, want, atol=1e-6, rtol=0)
    removed = base.repeat(3, 1)
    removed[torch.arange(3), torch.tensor([1, 6, 9])] = 0.0
    for got, want in zip(stack.compose_add(base, torch.tensor([1, 6, 9]), remove=True),
                         stack.compose(removed)):
        torch.testing.assert_close(got, want, atol=1e-6, rtol=0)
    # Masked-in plus masked-out is the whole image, for any subset.
    inside, outside = stack.compose(rows)
    torch.testing.assert_close(inside + outside, stack.compose(torch.ones(1, 16))[0].expand(3, -1, -1, -1),
                               atol=1e-6, rtol=0)


class _SmallMemory:
    """Wraps an adapter so that batches above `limit` images raise out-of-memory."""

    def __init__(self, inner, limit: int, error=torch.OutOfMemoryError) -> None:
        self.inner, self.limit, self.error, self.sizes = inner, limit, error, []

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def encode_images(self, pixels):
        if pixels.shape[0] > self.limit:
            raise self.error("CUDA out of memory. Tried to allocate 2.00 GiB")
        self.sizes.append(pixels.shape[0])
        return self.inner.encode_images(pixels)


def test_out_of_memory_halves_the_chunk_and_retries(hotbox, gray_image):
    ref = _stack(hotbox, gray_image, batch_size=4)
    ref_in, ref_out = ref.embed(torch.eye(16))
    small = _SmallMemory(hotbox, limit=6)
    stack = _stack(small, gray_image, batch_size=64)
    emb_in, emb_out = stack.embed(torch.eye(16))
    assert stack.chunk == 4 and stack.oom_halvings == 4  # 64 → 32 → 16 → 8 → 4
    assert max(small.sizes) <= 6
    torch.testing.assert_close(emb_in, ref_in)
    torch.testing.assert_close(emb_out, ref_out)
    assert stack.forward_passes == ref.forward_passes == 32  # retries are not passes


def test_cpu_allocator_failure_also_halves(hotbox, gray_image):
    small = _SmallMemory(hotbox, limit=20, error=lambda m: RuntimeError(
        "[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory"))
    stack = _stack(small, gray_image, batch_size=64)
    stack.embed(torch.eye(16))
    assert stack.chunk == 16


def test_other_errors_are_not_swallowed(hotbox, gray_image):
    stack = _stack(_SmallMemory(hotbox, limit=2, error=lambda m: RuntimeError("shape mismatch")),
                   gray_image)
    with pytest.raises(RuntimeError, match="shape mismatch"):
        stack.embed(torch.eye(16))


def test_oom_at_chunk_one_is_raised(hotbox, gray_image):
    stack = _stack(_SmallMemory(hotbox, limit=0), gray_image, batch_size=2)
    with pytest.raises(torch.OutOfMemoryError):
        stack.embed(torch.eye(16))


def test_chunk_from_free_memory(hotbox, gray_image, monkeypatch):
    import psutil

    per_image = int(np.prod((3, 32, 32))) * 4 * 64

    class _VM:
        available = per_image * 10  # room for 5 images at the 50% share

    monkeypatch.setattr(psutil, "virtual_memory", lambda: _VM())
    stack = _stack(hotbox, gray_image, batch_size=64)
    assert stack.chunk == 5
    # And the user's cap wins when memory is plentiful.
    monkeypatch.setattr(_VM, "available", per_image * 10**6)
    assert _stack(hotbox, gray_image, batch_size=8).chunk == 8


@pytest.mark.parametrize("n", [9, 25])
def test_encoder_batches_never_exceed_the_chunk(n, hotbox, gray_image):
    """Memory per step is bounded by the chunk, whatever N: the encoder never sees more."""
    seen = []
    original = hotbox.encode_images
    hotbox.encode_images = lambda pixels: (seen.append(pixels.shape[0]), original(pixels))[1]
    for search in ("exact", "lazy", "bidirectional"):
        mmattr.explain(gray_image, text="x", model=hotbox, division="grid", regions=n,
                       batch_size=6, search=search)
    assert max(seen) <= 6
