"""The region stack: composes masked-in / masked-out model inputs for any batch of subsets.

Resizing and cropping are linear, so with R_i = resize(I ⊙ 1_i) precomputed once,
resize(I ⊙ 1_S) = Σ_{i∈S} R_i: a batch of subsets (B, N) becomes model input with one matrix
product, and a search step's candidates S ∪ {c} become model input by indexing the stack
(R_S + R_c), on the device, with no per-candidate resize. It is the only place that calls the
encoder during a search, so it counts every forward pass; it also splits each batch across the
processes of a launcher (see `mmattr.distributed`) and bounds memory by its chunk size.

Ref. Chen et al., "Less is More: Fewer Interpretable Region via Submodular Subset Selection",
ICLR 2024 (masked-in / masked-out sub-region images).
"""

from __future__ import annotations

import contextlib
import math
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from . import distributed
from .adapters.base import Adapter
from .elements import ElementSet, _is_oom, register_modality
from .errors import InputError, arg
from .runs.context import RunContext

ProgressFn = Callable[[int, int], None]
#: share of the free accelerator memory a chunk may take (the rest: model, stack, allocator slack)
_FREE_SHARE = 0.5
#: images in the memory probe on an accelerator
_PROBE = 4


def _adjacency(labels: torch.Tensor, n: int) -> torch.Tensor:
    """(N, N) bool: regions that share an edge (4-neighbourhood) in the label map."""
    adj = torch.zeros(n * n, dtype=torch.bool, device=labels.device)
    for a, b in ((labels[:, :-1], labels[:, 1:]), (labels[:-1], labels[1:])):
        edge = a != b
        adj[a[edge] * n + b[edge]] = True
        adj[b[edge] * n + a[edge]] = True
    return adj.view(n, n)


@register_modality("image")
class RegionStack(ElementSet):
    """Regions of one image at the model's input resolution, plus the encoder that scores them.

    The image modality's element set: an element is a region of the division (``--division``),
    removed by filling its pixels (``--fill``, black by default). Its own fast path replaces
    the shared `ElementSet.embed`: one matrix product per batch of subsets, one indexed row per
    search candidate, masked-in and masked-out images in one encoder call.

    `batch_size` caps the images per encoder call; the chunk actually used is the largest that
    fits the free memory (measured on accelerators), halved and retried on out-of-memory. The
    result does not depend on it.
    """

    noun = "region"

    def __init__(self, image: np.ndarray, labels: np.ndarray, adapter: Adapter,
                 batch_size: int = 64, region_chunk: int = 16,
                 fill: torch.Tensor | None = None, context: RunContext | None = None) -> None:
        if image.shape[:2] != labels.shape:
            raise InputError(f"label map {labels.shape} does not match image {image.shape[:2]}")
        if batch_size < 1:
            raise InputError(f"{arg('batch_size', batch_size)}: the batch size must be at least 1")
        self.adapter = adapter
        self.device = adapter.device
        self.batch_size = int(batch_size)
        #: processes that share each encoding step (the run context says: 1 in dataset
        #: commands, every process of the launch for one explanation)
        self.processes = (context or RunContext()).processes()
        #: images encoded for this stack, summed over every process (same as one process)
        self.forward_passes = 0
        #: how many times an out-of-memory error halved the chunk
        self.oom_halvings = 0
        pre = adapter.preprocess
        dev = self.device
        img = torch.from_numpy(np.array(image, dtype=np.uint8)).to(dev).permute(2, 0, 1).float() / 255.0
        # Hidden pixels take the fill B (`mmattr.fill`; None: black). The input of a subset S is
        # B + Σ_{i∈S} (I - B)⊙1_i, still linear in S: the stack holds (I - B)⊙1_i, B goes into
        # the constant shift.
        base = fill.to(dev, img.dtype).reshape(img.shape) if fill is not None else None
        lab = torch.from_numpy(np.ascontiguousarray(labels).astype(np.int64)).to(dev)
        self.n = int(lab.max().item()) + 1
        # Pixel share of each region in the original image, for the curves' x axis.
        self.weights = torch.bincount(lab.ravel(), minlength=self.n).float() / lab.numel()
        # Built in chunks of regions so memory stays at region_chunk full-size images.
        parts = []
        for start in range(0, self.n, region_chunk):
            ids = torch.arange(start, min(start + region_chunk, self.n), device=dev)
            masks = (lab[None] == ids[:, None, None]).float()  # (c, H, W)
            shown = img if base is None else img - base
            parts.append(pre.geometry(shown[None] * masks[:, None]))
        stack = torch.cat(parts)  # (N, 3, h, w), in [0, 1] pixel space
        self.shape = tuple(stack.shape[1:])
        # Normalisation is affine, so the stack is kept divided by std and the mean is folded
        # into two constants: an input is then one add (masked-in) and one subtract (masked-out)
        # written straight into the encoder's batch, with no separate normalising pass.
        mean = torch.tensor(pre.mean, device=dev, dtype=stack.dtype).view(-1, 1, 1)
        std = torch.tensor(pre.std, device=dev, dtype=stack.dtype).view(-1, 1, 1)
        self._stack = (stack / std).reshape(self.n, -1)
        black = (-mean / std).expand(self.shape).reshape(1, -1).contiguous()
        # the empty subset's input: the normalised fill (black: −mean/std)
        self._shift = black if base is None else (
            (pre.geometry(base[None])[0] - mean) / std).reshape(1, -1).contiguous()
        full = (pre.geometry(img[None])[0] / std).reshape(1, -1)
        # masked-out(S) = normalised I − Σ_{i∈S} stack_i = this − normalised masked-in(S)
        self._out_const = full + 2 * black if base is None else full + black + self._shift
        self.chunk = self._initial_chunk()
        self.adjacency = _adjacency(lab, self.n)

    # -- memory ---------------------------------------------------------------------------------
    def _initial_chunk(self) -> int:
        """Images per encoder call: `batch_size`, lowered to what the free memory holds."""
        per_image = self._bytes_per_image()
        if per_image is None:
            return self.batch_size
        if self.device.type == "cuda":
            free, _ = torch.cuda.mem_get_info(self.device)
        else:
            try:
                import psutil

                free = psutil.virtual_memory().available
            except ImportError:
                return self.batch_size
        return int(max(1, min(self.batch_size, _FREE_SHARE * free // per_image)))

    def _bytes_per_image(self) -> int | None:
        pixels = int(np.prod(self.shape)) * 4
        if self.device.type != "cuda":
            # No allocator statistics on the CPU: bound by the composed inputs and a generous
            # allowance for activations (a ViT-B at 224² needs about 40 input sizes).
            return pixels * 64
        torch.cuda.synchronize(self.device)
        torch.cuda.reset_peak_memory_stats(self.device)
        before = torch.cuda.memory_allocated(self.device)
        with torch.inference_mode():
            self.adapter.encode_images(torch.zeros(_PROBE, *self.shape, device=self.device))
        peak = torch.cuda.max_memory_allocated(self.device) - before
        return max(pixels * 3, peak // _PROBE + pixels * 3)

    # -- composition ----------------------------------------------------------------------------
    def _with_outside(self, inside: torch.Tensor, masked_out: bool) -> torch.Tensor:
        """(B, D) normalised masked-in rows → the encoder's batch: (B, 3, h, w), or (2B, 3, h, w)
        with the masked-out images after the masked-in ones."""
        if not masked_out:
            return inside.view(-1, *self.shape)
        b = inside.shape[0]
        both = inside.new_empty(2 * b, inside.shape[1])
        both[:b] = inside
        torch.sub(self._out_const, inside, out=both[b:])
        return both.view(-1, *self.shape)

    def _inside(self, subsets: torch.Tensor) -> torch.Tensor:
        return torch.addmm(self._shift, subsets.to(self._stack.dtype), self._stack)

    def _inside_add(self, base: torch.Tensor, candidates: torch.Tensor, remove: bool
                    ) -> torch.Tensor:
        # One row of the stack indexed per candidate: the step loop of a greedy search.
        base_img = torch.addmm(self._shift, base.to(self._stack.dtype)[None], self._stack)
        rows = self._stack.index_select(0, candidates)
        return torch.sub(base_img, rows) if remove else torch.add(base_img, rows)

    def compose(self, subsets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, N) 0/1 subsets → normalised masked-in and masked-out inputs, each (B, 3, h, w).

        Masked-in keeps only the subset's regions (the rest filled: black unless the stack was
        given a fill); masked-out fills them.
        """
        both = self._with_outside(self._inside(subsets), True)
        return both[: subsets.shape[0]], both[subsets.shape[0]:]

    def compose_add(self, base: torch.Tensor, candidates: torch.Tensor, remove: bool = False
                    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs of base ∪ {c} (or base \\ {c} with `remove`) for each candidate region c."""
        both = self._with_outside(self._inside_add(base, candidates, remove), True)
        return both[: candidates.shape[0]], both[candidates.shape[0]:]

    # -- encoding -------------------------------------------------------------------------------
    def _run(self, count: int, compose: Callable[[int, int], torch.Tensor],
             masked_out: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Encode `count` composed rows: this process's share, in chunks, gathered at the end.

        `compose(a, b)` gives the normalised masked-in rows a..b-1 as (b - a, D)."""
        start, stop = distributed.step_bounds(count, self.processes)
        outs_in: list[torch.Tensor] = []
        outs_out: list[torch.Tensor] = []
        while start < stop:
            # One candidate brings two images (masked-in and -out) when masked_out is asked for.
            most = max(1, self.chunk // 2) if masked_out else self.chunk
            # Equal chunks (92 images as 46 + 46, not 64 + 28): small batches waste the encoder.
            left = stop - start
            end = start + math.ceil(left / math.ceil(left / most))
            try:
                batch = self._with_outside(compose(start, end), masked_out)
                # Composition stays in float32; only the encoder runs under autocast.
                with self._autocast():
                    if not masked_out:
                        outs_in.append(self.adapter.encode_images(batch).float())
                    elif self.chunk >= 2:
                        emb = self.adapter.encode_images(batch).float()
                        outs_in.append(emb[: end - start])
                        outs_out.append(emb[end - start:])
                    else:
                        outs_in.append(self.adapter.encode_images(batch[:1]).float())
                        outs_out.append(self.adapter.encode_images(batch[1:]).float())
            except (RuntimeError, MemoryError) as exc:
                if not _is_oom(exc) or self.chunk == 1:
                    raise
                self._halve()  # and retry the same rows with the smaller chunk
                continue
            start = end
        self.forward_passes += count * (2 if masked_out else 1)
        emb_in = self._gather(outs_in, count)
        emb_out = self._gather(outs_out, count) if masked_out else None
        return emb_in, emb_out

    def _autocast(self):
        # Duck-typed adapters (tests, wrappers) may lack it: then plain float32.
        autocast = getattr(self.adapter, "autocast", None)
        return autocast() if autocast is not None else contextlib.nullcontext()

    def _halve(self) -> None:
        self.chunk = max(1, self.chunk // 2)
        self.oom_halvings += 1
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    def _gather(self, parts: list[torch.Tensor], count: int) -> torch.Tensor:
        if parts:
            local = torch.cat(parts)
        else:  # this process's share is empty (fewer rows than processes)
            local = torch.zeros(0, self.adapter.embed_dim, device=self.device)
        return F.normalize(distributed.gather_rows(local, count, self.processes), dim=-1)

    @torch.inference_mode()
    def embed(self, subsets: torch.Tensor, masked_out: bool = True,
              ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Unit-norm embeddings of the masked-in (and masked-out) images of each subset.

        Chunked so that at most `batch_size` images go through the encoder at once.
        """
        subsets = subsets.to(self.device)
        return self._run(subsets.shape[0], lambda a, b: self._inside(subsets[a:b]), masked_out)

    @torch.inference_mode()
    def embed_add(self, base: torch.Tensor, candidates: torch.Tensor, masked_out: bool = True,
                  remove: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Embeddings of base ∪ {c} (base \\ {c} with `remove`) for each region id in candidates.

        `base` is an (N,) 0/1 vector; the same values as `embed` on the equivalent subset rows.
        """
        base = base.to(self.device)
        candidates = candidates.to(self.device)
        return self._run(candidates.shape[0],
                         lambda a, b: self._inside_add(base, candidates[a:b], remove),
                         masked_out)

    def embed_regions(self) -> torch.Tensor:
        """(N, D) embeddings of each region shown alone: F(s_i) of the effectiveness score."""
        none = torch.zeros(self.n, device=self.device)
        return self.embed_add(none, torch.arange(self.n, device=self.device), masked_out=False)[0]

    def embed_ends(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Embeddings of the fill (black by default) and of the full image (the curves' end
        points)."""
        ends = torch.stack([torch.zeros(self.n, device=self.device),
                            torch.ones(self.n, device=self.device)])
        emb = self.embed(ends, masked_out=False)[0]
        return emb[0], emb[1]
