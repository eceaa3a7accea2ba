"""ops.mask_iou against a float64 reference from pixel counts and against pycocotools.mask.iou."""
import numpy as np
import pytest
import torch

import tritonvision.ops as T
from tritonvision.ops._op import REGISTERED


def reference_iou(masks1, masks2, iscrowd=None):
    """Pair by pair from the definition: float64 counts, crowd over the first mask's area."""
    a, b = masks1.flatten(1).ne(0).double(), masks2.flatten(1).ne(0).double()
    out = torch.zeros(len(a), len(b), dtype=torch.float64)
    for i in range(len(a)):
        for j in range(len(b)):
            inter = float((a[i] * b[j]).sum())
            union = float(a[i].sum()) if iscrowd is not None and iscrowd[j] else float(((a[i] + b[j]) > 0).sum())
            out[i, j] = inter / union if inter > 0 else 0.0
    return out


def random_masks(n, h, w, dtype=torch.bool):
    """Blobs of random density; some empty, some full."""
    density = torch.rand(n, 1, 1)
    masks = torch.rand(n, h, w) < density
    if n >= 3:
        masks[0] = False
        masks[1] = True
    return masks.to(dtype)


@pytest.mark.kernel
@pytest.mark.parametrize("h, w", [(1, 1), (7, 9), (8, 4), (13, 37)])   # H*W: 1, 63, 32, 481
@pytest.mark.parametrize("dtype", [torch.bool, torch.uint8])
def test_mask_iou_matches_float64_reference(h, w, dtype):
    a, b = random_masks(37, h, w, dtype), random_masks(35, h, w, dtype)
    if dtype == torch.uint8:
        a = a * torch.randint(1, 4, a.shape, dtype=torch.uint8)      # any nonzero value is foreground
    crowd = torch.rand(35) < 0.3
    for iscrowd in (None, crowd):
        got = T.mask_iou(a, b, iscrowd)
        assert got.dtype == torch.float32 and got.shape == (37, 35)
        torch.testing.assert_close(got, reference_iou(a, b, iscrowd).float(), rtol=0, atol=0)


@pytest.mark.kernel
def test_mask_iou_equals_pycocotools_bit_for_bit():
    mask_utils = pytest.importorskip("pycocotools.mask")
    a, b = random_masks(20, 21, 19), random_masks(17, 21, 19)
    crowd = torch.rand(17) < 0.4

    def rles(m):
        return mask_utils.encode(np.asfortranarray(m.permute(1, 2, 0).numpy().astype(np.uint8)))

    expected = mask_utils.iou(rles(a), rles(b), crowd.numpy().astype(np.uint8))
    assert torch.equal(T.mask_iou(a, b, crowd), torch.from_numpy(expected).float())


@pytest.mark.kernel
def test_mask_iou_empty_inputs_and_non_contiguous():
    a, b = random_masks(5, 6, 70), random_masks(4, 6, 70)
    assert T.mask_iou(a[:0], b).shape == (0, 4)
    assert T.mask_iou(a, b[:0]).shape == (5, 0)
    assert T.mask_iou(a[:, :0], b[:, :0]).eq(0).all()                # 0 x 70 pixels: nothing intersects
    strided = torch.rand(70, 6, 10) < 0.5                            # [W, H, N] -> permuted view
    view = strided.permute(2, 1, 0)
    assert not view.is_contiguous()
    torch.testing.assert_close(T.mask_iou(view, view[::2]), reference_iou(view, view[::2]).float(),
                               rtol=0, atol=0)


def test_mask_iou_errors_name_the_argument_and_fix():
    m = torch.zeros(2, 4, 4, dtype=torch.bool)
    with pytest.raises(TypeError, match=r"mask_iou: masks1 must be bool or uint8 .* masks > 0.5"):
        T.mask_iou(m.float(), m)
    with pytest.raises(ValueError, match=r"masks2 must have shape \[N, H, W\], got \[4, 4\]"):
        T.mask_iou(m, m[0])
    with pytest.raises(ValueError, match=r"same H, W, got \[4, 4\] and \[4, 3\]"):
        T.mask_iou(m, m[:, :, :3])
    with pytest.raises(ValueError, match=r"iscrowd must have shape \[M\] = \[2\]"):
        T.mask_iou(m, m, torch.zeros(3, dtype=torch.bool))


@pytest.mark.kernel
def test_opcheck():
    args = REGISTERED["mask_iou"].example(torch.device("cpu"))
    torch.library.opcheck(torch.ops.tritonvision.mask_iou, args)
    torch.library.opcheck(torch.ops.tritonvision.mask_iou, (args[0], args[1], None))


def test_compiles_fullgraph():
    a, b = random_masks(6, 9, 10), random_masks(5, 9, 10)
    crowd = torch.rand(5) < 0.5
    compiled = torch.compile(lambda x, y, c: T.mask_iou(x, y, c) * 2, fullgraph=True)
    assert torch.equal(compiled(a, b, crowd), T.mask_iou(a, b, crowd) * 2)


@pytest.mark.gpu
def test_gpu_mask_iou_matches_cpu_path_at_larger_sizes():
    a, b = random_masks(100, 256, 300), random_masks(90, 256, 300)
    crowd = torch.rand(90) < 0.2
    assert torch.equal(T.mask_iou(a.cuda(), b.cuda(), crowd.cuda()).cpu(), T.mask_iou(a, b, crowd))


@pytest.mark.gpu
def test_gpu_mask_iou_int64_offsets():
    """5 + 4 masks of 16384 x 16384 (2.4 GB of bool): offsets past 2**31, rectangles with exact IoU."""
    side = 16384
    boxes1 = [(0, 0, side, side), (100, 200, 9000, 16000), (0, 0, 1, 1), (side - 5, side - 7, side, side),
              (4000, 4000, 4000, 4000)]
    boxes2 = [(0, 0, 8000, 8000), (100, 200, 9000, 16000), (side - 1, side - 1, side, side), (5000, 0, side, 300)]

    def rectangles(boxes):
        m = torch.zeros(len(boxes), side, side, dtype=torch.bool, device="cuda")
        for k, (y0, x0, y1, x1) in enumerate(boxes):
            m[k, y0:y1, x0:x1] = True
        return m

    def area(box):
        return max(box[2] - box[0], 0) * max(box[3] - box[1], 0)

    expected = torch.zeros(len(boxes1), len(boxes2), dtype=torch.float64)
    for i, p in enumerate(boxes1):
        for j, q in enumerate(boxes2):
            inter = area((max(p[0], q[0]), max(p[1], q[1]), min(p[2], q[2]), min(p[3], q[3])))
            expected[i, j] = inter / (area(p) + area(q) - inter) if inter else 0.0
    got = T.mask_iou(rectangles(boxes1), rectangles(boxes2))
    assert torch.equal(got.cpu(), expected.float())
