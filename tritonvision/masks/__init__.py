"""COCO masks as data: RLE and polygons, identical to ``pycocotools.mask``, in numpy alone.

An RLE is COCO's ``{"size": [h, w], "counts": ...}``: run lengths of the [h, w] binary mask
in column-major (Fortran) order, alternating 0-runs and 1-runs, starting with a 0-run.
``counts`` is the compressed string (what :func:`encode` returns: bytes, byte for byte
pycocotools') or the plain list of run lengths ("uncompressed", as COCO stores crowd
regions); every function accepts both.

=========================  ==========================================================
``encode(masks)``          binary [H, W] / [N, H, W] masks -> RLE / list of RLEs
``decode(rles)``           RLE / list -> uint8 [H, W] / [N, H, W]
``area(rles)``             foreground pixels
``to_bbox(rles)``          [x, y, w, h] boxes (``toBbox``)
``merge(rles, intersect)`` union / intersection
``from_polygons(polys, h, w)``    polygons -> RLE (``frPyObjects`` + ``merge``)
``from_segmentation(seg, h, w)``  a COCO ``segmentation`` field -> RLE (``annToRLE``)
``iou(dt, gt, iscrowd)``   [D, G] IoU of RLEs (crowd: over the detection's area)
=========================  ==========================================================

Where pycocotools misbehaves on malformed input (counts not summing to h * w, masks of
different sizes, an empty list) these raise a ValueError saying what is wrong instead.
The batch axis comes first ([N, H, W]) where pycocotools puts it last ([h, w, n]).
Dense masks on the GPU: :func:`tritonvision.ops.mask_iou`.
"""
from .iou import iou
from .polygons import from_polygons
from .rle import area, decode, encode, merge, to_bbox
from .segmentation import from_segmentation

__all__ = ["encode", "decode", "area", "to_bbox", "merge", "from_polygons", "from_segmentation", "iou"]
