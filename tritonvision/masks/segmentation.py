"""A COCO annotation's ``segmentation`` field (polygons or RLE) as one compressed RLE."""
from __future__ import annotations

from collections.abc import Mapping

from . import _runs
from .polygons import from_polygons


def from_segmentation(segmentation, height: int, width: int) -> dict:
    """One compressed RLE of a COCO ``segmentation``, as pycocotools' ``COCO.annToRLE``.

    Args:
        segmentation: polygons (list of flat ``[x0, y0, ...]`` lists), an uncompressed RLE
            (``counts`` a list, as COCO stores crowd regions) or a compressed one.
        height, width: the image size; an RLE must have this size.
    Returns:
        ``{"size": [height, width], "counts": bytes}``: the union of the polygons
        (:func:`from_polygons`), or the RLE with compressed counts.
    """
    op = "masks.from_segmentation"
    if isinstance(segmentation, Mapping):
        runs = _runs.parse([segmentation], op, single=True)
        if tuple(runs.sizes[0]) != (height, width):
            raise ValueError(f"{op}: RLE size {runs.sizes[0].tolist()} does not match the image "
                             f"{height}x{width}")
        counts = segmentation["counts"]
        if isinstance(counts, (str, bytes)):
            return {"size": [int(height), int(width)],
                    "counts": counts.encode() if isinstance(counts, str) else counts}
        return _runs.to_dicts(runs)[0]
    if isinstance(segmentation, (list, tuple)):
        return from_polygons(list(segmentation), height, width)
    raise TypeError(f"{op}: segmentation must be a list of polygons or an RLE dict, "
                    f"got {type(segmentation).__name__}")
