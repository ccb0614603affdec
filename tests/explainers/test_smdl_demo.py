"""The walking skeleton's promise: on scenes the demo model never saw, SMDL's top region lies
on the object the text names."""

import mmattr
from mmattr.datasets.shapes import render_scene


def test_top_region_on_named_object_for_unseen_scenes():
    adapter = mmattr.load_adapter("demo", device="cpu")
    hits = []
    for seed in range(90_000, 90_008):  # held out: training draws from its own generator stream
        scene = render_scene(seed, size=224)
        k = seed % len(scene.labels)  # also the second or third object of multi-object scenes
        e = mmattr.explain(scene.image, text=scene.labels[k], model=adapter)
        top = e.regions == e.order[0]
        hits.append((top & scene.masks[k]).sum() / top.sum() >= 0.5)
    # Measured 8/8 here (18/20 on seeds 90000-90019); a margin for other BLAS builds.
    assert sum(hits) >= 6, hits
