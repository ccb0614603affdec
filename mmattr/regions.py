"""The region stack: composes masked-in / masked-out model inputs for any batch of subsets.

Resizing and cropping are linear, so with R_i = resize(I ⊙ 1_i) precomputed once,
resize(I ⊙ 1_S) = Σ_{i∈S} R_i: a batch of subsets (B, N) becomes model input with one matrix
product, on the device, with no per-candidate resize. It is the only place that calls the
encoder during a search, so it counts every forward pass.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from .adapters.base import Adapter
from .errors import InputError


class RegionStack:
    """Regions of one image at the model's input resolution, plus the encoder that scores them."""

    def __init__(self, image: np.ndarray, labels: np.ndarray, adapter: Adapter,
                 batch_size: int = 64, region_chunk: int = 16) -> None:
        if image.shape[:2] != labels.shape:
            raise InputError(f"label map {labels.shape} does not match image {image.shape[:2]}")
        if batch_size < 1:
            raise InputError(f"--batch-size must be at least 1, got {batch_size}")
        self.adapter = adapter
        self.device = adapter.device
        self.batch_size = int(batch_size)
        self.forward_passes = 0
        pre = adapter.preprocess
        dev = self.device
        img = torch.from_numpy(np.ascontiguousarray(image)).to(dev).permute(2, 0, 1).float() / 255.0
        lab = torch.from_numpy(np.ascontiguousarray(labels).astype(np.int64)).to(dev)
        self.n = int(lab.max().item()) + 1
        # Pixel share of each region in the original image, for the curves' x axis.
        self.area = torch.bincount(lab.ravel(), minlength=self.n).float() / lab.numel()
        # Built in chunks of regions so memory stays at region_chunk full-size images.
        parts = []
        for start in range(0, self.n, region_chunk):
            ids = torch.arange(start, min(start + region_chunk, self.n), device=dev)
            masks = (lab[None] == ids[:, None, None]).float()  # (c, H, W)
            parts.append(pre.geometry(img[None] * masks[:, None]))
        stack = torch.cat(parts)  # (N, 3, h, w), in [0, 1] pixel space
        self.shape = tuple(stack.shape[1:])
        self._stack = stack.reshape(self.n, -1)
        self._full = pre.geometry(img[None]).reshape(1, -1)

    def compose(self, subsets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, N) 0/1 subsets → normalised masked-in and masked-out inputs, each (B, 3, h, w).

        Masked-in keeps only the subset's regions (the rest black); masked-out blacks them out.
        """
        inside = subsets.to(self._stack.dtype) @ self._stack
        outside = self._full - inside
        norm = self.adapter.preprocess.normalize
        shape = (-1, *self.shape)
        return norm(inside.view(shape)), norm(outside.view(shape))

    def _encode(self, pixels: torch.Tensor) -> torch.Tensor:
        self.forward_passes += pixels.shape[0]
        return self.adapter.encode_images(pixels).float()

    @torch.inference_mode()
    def embed(self, subsets: torch.Tensor, masked_out: bool = True,
              ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Unit-norm embeddings of the masked-in (and masked-out) images of each subset.

        Chunked so that at most `batch_size` images go through the encoder at once.
        """
        subsets = subsets.to(self.device)
        outs_in, outs_out = [], []
        per = self.batch_size // 2 if masked_out and self.batch_size > 1 else self.batch_size
        for start in range(0, subsets.shape[0], per):
            inside, outside = self.compose(subsets[start:start + per])
            if masked_out and per != self.batch_size:
                emb = self._encode(torch.cat([inside, outside]))
                outs_in.append(emb[: inside.shape[0]])
                outs_out.append(emb[inside.shape[0]:])
            else:
                outs_in.append(self._encode(inside))
                if masked_out:
                    outs_out.append(self._encode(outside))
        emb_in = F.normalize(torch.cat(outs_in), dim=-1)
        emb_out = F.normalize(torch.cat(outs_out), dim=-1) if masked_out else None
        return emb_in, emb_out

    def embed_regions(self) -> torch.Tensor:
        """(N, D) embeddings of each region shown alone: F(s_i) of the effectiveness score."""
        eye = torch.eye(self.n, device=self.device)
        return self.embed(eye, masked_out=False)[0]

    def embed_ends(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Embeddings of the black image and of the full image (the curves' end points)."""
        none = torch.zeros(1, self.n, device=self.device)
        return self.embed(none, masked_out=False)[0][0], self.embed(none + 1, masked_out=False)[0][0]


ProgressFn = Callable[[int, int], None]
