"""COCO ``segmentation`` fields (polygons, RLE) as binary masks, pixel for pixel pycocotools'."""
from __future__ import annotations

import numpy as np

from tritonvision import masks


def segmentation_mask(segmentation, height: int, width: int) -> np.ndarray:
    """Bool [H, W] of a COCO ``segmentation`` field, as pycocotools' ``COCO.annToMask``.

    Polygons (a list of flat ``[x0, y0, x1, y1, ...]`` lists in pixel coordinates) are
    rasterised with pycocotools' own algorithm (:func:`tritonvision.masks.from_polygons`);
    an RLE dict (compressed or uncompressed ``counts``, ``size`` [h, w]) is decoded and
    must have the image's size. Raises ValueError saying what is malformed.
    """
    return masks.decode(masks.from_segmentation(segmentation, height, width)).astype(bool)
