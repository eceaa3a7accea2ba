"""The upsampling layers against the lecture's worked examples, and the fused
upsample_bilinear_add op against an independent float64 interpolation matrix."""
import math

import pytest
import torch
import torch.nn.functional as F

from tritonvision.ops._op import KERNEL_TEST_MODE
from tritonvision.nn.upsampling import (BedOfNailsUpsample, BicubicUpsample, BilinearUpsample,
                                        MaxPoolWithIndices, MaxUnpool, NearestUpsample, TransposedConv)
from tritonvision.ops.upsample import upsample_bilinear_add

LECTURE_IN = torch.tensor([[1.0, 2.0], [3.0, 4.0]])[None, None]


# ----------------------------------------------------------------------------- references
def bilinear_matrix(n_in: int, n_out: int) -> torch.Tensor:
    """[n_out, n_in] float64 matrix of align_corners=False bilinear interpolation, from the formula."""
    m = torch.zeros(n_out, n_in, dtype=torch.float64)
    for o in range(n_out):
        src = max((o + 0.5) * n_in / n_out - 0.5, 0.0)
        i0 = min(int(math.floor(src)), n_in - 1)
        i1 = min(i0 + 1, n_in - 1)
        lam = src - i0
        m[o, i0] += 1 - lam
        m[o, i1] += lam
    return m


def cubic_weights(t: float, a: float = -0.75) -> list[float]:
    """Keys' cubic convolution weights of the 4 taps at offsets -1, 0, 1, 2 for fraction t."""
    def k(d):
        d = abs(d)
        if d <= 1:
            return (a + 2) * d ** 3 - (a + 3) * d ** 2 + 1
        if d < 2:
            return a * d ** 3 - 5 * a * d ** 2 + 8 * a * d - 4 * a
        return 0.0
    return [k(t + 1), k(t), k(1 - t), k(2 - t)]


def bicubic_matrix(n_in: int, n_out: int, a: float = -0.75) -> torch.Tensor:
    """[n_out, n_in] float64 bicubic interpolation matrix, align_corners=False, clamped borders."""
    m = torch.zeros(n_out, n_in, dtype=torch.float64)
    for o in range(n_out):
        src = (o + 0.5) * n_in / n_out - 0.5          # bicubic does not clamp src at 0
        i = math.floor(src)
        for tap, wgt in zip(range(i - 1, i + 3), cubic_weights(src - i, a)):
            m[o, min(max(tap, 0), n_in - 1)] += wgt
    return m


def reference_upsample_add(x, skip):
    """float64 A_y @ x @ A_x^T + skip, and a function giving grad_x = A_y^T g A_x."""
    h, w = x.shape[-2:]
    H, W = skip.shape[-2:]
    ay, ax = bilinear_matrix(h, H), bilinear_matrix(w, W)
    out = ay @ x.double() @ ax.T + skip.double()
    return out, (lambda g: ay.T @ g.double() @ ax)


# ----------------------------------------------------------------------------- layers
def test_nearest_upsample_lecture_example():
    out = NearestUpsample(2)(LECTURE_IN)
    expected = torch.tensor([[1, 1, 2, 2], [1, 1, 2, 2], [3, 3, 4, 4], [3, 3, 4, 4.0]])
    assert torch.equal(out[0, 0], expected)


def test_bed_of_nails_lecture_example_and_gradient():
    x = LECTURE_IN.clone().requires_grad_()
    out = BedOfNailsUpsample(2)(x)
    expected = torch.tensor([[1, 0, 2, 0], [0, 0, 0, 0], [3, 0, 4, 0], [0, 0, 0, 0.0]])
    assert torch.equal(out[0, 0], expected)
    g = torch.randn(1, 1, 4, 4)
    out.backward(g)
    assert torch.equal(x.grad, g[:, :, ::2, ::2])


def test_bed_of_nails_non_square_factor_and_inf_stays_out_of_zeros():
    x = torch.randn(2, 3, 3, 2)
    x[0, 0, 0, 0] = float("inf")
    out = BedOfNailsUpsample((3, 2))(x)
    assert out.shape == (2, 3, 9, 4)
    expected = torch.zeros(2, 3, 9, 4)
    expected[:, :, ::3, ::2] = x
    assert torch.equal(out, expected)


def test_bilinear_upsample_reproduces_lecture_grid_exactly():
    out = BilinearUpsample(2)(LECTURE_IN)
    expected = torch.tensor([[1.00, 1.25, 1.75, 2.00], [1.50, 1.75, 2.25, 2.50],
                             [2.50, 2.75, 3.25, 3.50], [3.00, 3.25, 3.75, 4.00]])
    assert torch.equal(out[0, 0], expected)


def test_bilinear_upsample_matches_formula_on_random_input():
    x = torch.randn(2, 3, 5, 7, dtype=torch.float64)
    out = BilinearUpsample(3)(x)
    ref = bilinear_matrix(5, 15) @ x @ bilinear_matrix(7, 21).T
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-12)


def test_bicubic_upsample_matches_lecture_table_to_two_decimals():
    out = BicubicUpsample(2)(LECTURE_IN.double())[0, 0]
    lecture = torch.tensor([[0.68, 1.02, 1.56, 1.89], [1.35, 1.68, 2.23, 2.56],
                            [2.44, 2.77, 3.32, 3.65], [3.11, 3.44, 3.98, 4.32]], dtype=torch.float64)
    assert (out - lecture).abs().max() <= 0.005 + 1e-12
    # the convention behind it: Keys' a = -0.75, align_corners=False
    ref = bicubic_matrix(2, 4) @ LECTURE_IN[0, 0].double() @ bicubic_matrix(2, 4).T
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-12)
    # align_corners=True keeps the corners exact, so it is not the lecture's convention
    corners = BicubicUpsample(2, align_corners=True)(LECTURE_IN.double())[0, 0]
    assert corners[0, 0] == 1.0 and (corners - lecture).abs().max() > 0.1


def test_bicubic_upsample_matches_keys_a_minus_075_on_random_input():
    x = torch.randn(1, 2, 4, 6, dtype=torch.float64)
    out = BicubicUpsample(2)(x)
    ref = bicubic_matrix(4, 8) @ x @ bicubic_matrix(6, 12).T
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-12)


def test_max_unpool_lecture_example():
    x = torch.tensor([[1, 2, 6, 3], [3, 5, 2, 1], [1, 2, 2, 1], [7, 3, 4, 8.0]])[None, None]
    values, indices = MaxPoolWithIndices(2)(x)
    assert torch.equal(values[0, 0], torch.tensor([[5, 6], [7, 8.0]]))
    out = MaxUnpool(2)(torch.tensor([[1, 2], [3, 4.0]])[None, None], indices)
    expected = torch.tensor([[0, 0, 2, 0], [0, 1, 0, 0], [0, 0, 0, 0], [3, 0, 0, 4.0]])
    assert torch.equal(out[0, 0], expected)


def test_max_unpool_restores_maxima_with_output_size():
    x = torch.randn(2, 3, 7, 9)
    values, indices = MaxPoolWithIndices(2, stride=2)(x)
    out = MaxUnpool(2, stride=2)(values, indices, output_size=[7, 9])
    assert out.shape == x.shape
    kept = out != 0
    assert torch.equal(out[kept], x[kept])
    assert int(kept.sum()) == values.numel()


def _conv_matrix_1d(kernel, n_in_padded: int, stride: int) -> torch.Tensor:
    """The lecture's X: row r holds the filter (x, y, z) starting at column r * stride."""
    rows = (n_in_padded - len(kernel)) // stride + 1
    m = torch.zeros(rows, n_in_padded, dtype=torch.float64)
    for r in range(rows):
        m[r, r * stride:r * stride + len(kernel)] = torch.tensor(kernel, dtype=torch.float64)
    return m


def test_transposed_conv_1d_stride_1_is_x_transpose_a():
    xyz = torch.randn(3, dtype=torch.float64)
    a = torch.randn(4, dtype=torch.float64)
    big_x = _conv_matrix_1d(xyz.tolist(), 6, stride=1)           # the lecture's 4 x 6 matrix
    full = big_x.T @ a                                            # ax, ay + bx, az + by + cx, ...
    x, y, z = xyz.tolist()
    aa, b, c, d = a.tolist()
    lecture = torch.tensor([aa * x, aa * y + b * x, aa * z + b * y + c * x, b * z + c * y + d * x,
                            c * z + d * y, d * z], dtype=torch.float64)
    torch.testing.assert_close(full, lecture)
    out = F.conv_transpose1d(a[None, None], xyz[None, None], stride=1)[0, 0]
    torch.testing.assert_close(out, full)
    # padding=1 trims the padded positions: still X^T a, read inside the padding
    padded = F.conv_transpose1d(a[None, None], xyz[None, None], stride=1, padding=1)[0, 0]
    torch.testing.assert_close(padded, full[1:-1])


def test_transposed_conv_1d_stride_2_is_x_transpose_a():
    xyz = torch.randn(3, dtype=torch.float64)
    ab = torch.randn(2, dtype=torch.float64)
    big_x = _conv_matrix_1d(xyz.tolist(), 6, stride=2)           # the lecture's 2 x 6 matrix
    full = big_x.T @ ab                                           # ax, ay, az + bx, by, bz, 0
    x, y, z = xyz.tolist()
    a, b = ab.tolist()
    torch.testing.assert_close(full, torch.tensor([a * x, a * y, a * z + b * x, b * y, b * z, 0.0],
                                                  dtype=torch.float64))
    out = F.conv_transpose1d(ab[None, None], xyz[None, None], stride=2)[0, 0]
    torch.testing.assert_close(out, full[:5])
    # with the lecture's padding 1, the conv maps 4 -> 2; its transpose maps 2 -> 4
    layer = TransposedConv(1, 1, (1, 3), stride=(1, 2), padding=(0, 1), output_padding=(0, 1), bias=False)
    with torch.no_grad():
        layer.weight.copy_(xyz.float().view(1, 1, 1, 3))
    out2d = layer(ab.float().view(1, 1, 1, 2))[0, 0, 0]
    torch.testing.assert_close(out2d.double(), full[1:5], rtol=1e-6, atol=1e-6)
    # and it is the adjoint of the strided conv: <conv(u), v> == <u, conv^T(v)>
    u = torch.randn(1, 1, 4, dtype=torch.float64)
    lhs = (F.conv1d(u, xyz[None, None], stride=2, padding=1) * ab[None, None]).sum()
    rhs = (u * F.conv_transpose1d(ab[None, None], xyz[None, None], stride=2, padding=1,
                                  output_padding=1)).sum()
    torch.testing.assert_close(lhs, rhs)


def test_transposed_conv_is_conv_transpose2d_compatible():
    ours = TransposedConv(4, 3, 3, stride=2, padding=1, output_padding=1)
    theirs = torch.nn.ConvTranspose2d(4, 3, 3, stride=2, padding=1, output_padding=1)
    theirs.load_state_dict(ours.state_dict())
    x = torch.randn(2, 4, 5, 6)
    assert ours(x).shape == (2, 3, 10, 12)
    torch.testing.assert_close(ours(x), theirs(x))


def test_layers_reject_bad_scale_factor():
    with pytest.raises(ValueError, match="NearestUpsample: scale_factor"):
        NearestUpsample(0)
    with pytest.raises(ValueError, match="BedOfNailsUpsample: scale_factor"):
        BedOfNailsUpsample(1.5)


# ----------------------------------------------------------------------------- fused op
TOL = {torch.float32: dict(rtol=1e-5, atol=1e-5), torch.float16: dict(rtol=2e-3, atol=2e-3),
       torch.bfloat16: dict(rtol=1.6e-2, atol=1.6e-2), torch.float64: dict(rtol=1e-12, atol=1e-12)}


def _layout(t, how):
    if how == "channels_last":
        return t.to(memory_format=torch.channels_last)
    if how == "strided":                                          # a non-dense view
        return torch.stack([t, torch.full_like(t, float("nan"))], dim=-1)[..., 0]
    return t


DTYPES = [torch.float32, torch.float16, torch.bfloat16]
SIZES = [((3, 4), (6, 8), 2), ((3, 5), (7, 9), 2), ((2, 3), (8, 11), 4)]
LAYOUTS = ["contiguous", "channels_last", "strided"]
# every combination on the torch path; in the (slow) interpreter a covering diagonal,
# so each dtype, each size and each layout still runs through the kernel
CASES = ([(d, s, lay) for d in DTYPES for s in SIZES for lay in LAYOUTS] if not KERNEL_TEST_MODE
         else [(DTYPES[i], SIZES[i], LAYOUTS[i]) for i in range(3)])


@pytest.mark.kernel
@pytest.mark.parametrize("dtype,sizes,layout", CASES)
def test_upsample_bilinear_add_value_and_grad_match_float64(dtype, sizes, layout):
    (h, w), (H, W), s = sizes
    b, c = (1, 2) if KERNEL_TEST_MODE else (2, 3)
    x = torch.randn(b, c, h, w).to(dtype)
    skip = torch.randn(b, c, H, W).to(dtype)
    xs, ss = _layout(x, layout).requires_grad_(), _layout(skip, layout).requires_grad_()
    out = upsample_bilinear_add(xs, ss, scale_factor=s)
    ref, adjoint = reference_upsample_add(x, skip)
    assert out.dtype == dtype and out.shape == (b, c, H, W)
    if layout == "channels_last":
        assert out.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(out.double(), ref, **TOL[dtype])
    g = torch.randn(b, c, H, W).to(dtype)
    gx, gs = torch.autograd.grad(out, (xs, ss), g)
    torch.testing.assert_close(gx.double(), adjoint(g), **TOL[dtype])
    assert torch.equal(gs, g)


@pytest.mark.kernel
def test_upsample_bilinear_add_float64_and_channels_last_grad_exact():
    x = torch.randn(1, 2, 4, 3, dtype=torch.float64)
    skip = torch.randn(1, 2, 8, 6, dtype=torch.float64)
    out = upsample_bilinear_add(x, skip)
    ref, adjoint = reference_upsample_add(x, skip)
    torch.testing.assert_close(out, ref, **TOL[torch.float64])
    g = torch.randn(1, 2, 8, 6, dtype=torch.float64).to(memory_format=torch.channels_last)
    x.requires_grad_()
    gx, = torch.autograd.grad(upsample_bilinear_add(x, skip), x, g)
    torch.testing.assert_close(gx, adjoint(g), **TOL[torch.float64])


@pytest.mark.kernel
@pytest.mark.parametrize("rows,cols", [((1, 2), (1, 3)), ((2, 4), (3, 7)), ((5, 3), (4, 4)),
                                       ((3, 13), (2, 9)), ((4, 15), (7, 29)), ((6, 7), (5, 17))])
def test_upsample_bilinear_backward_gather_window_misses_no_output(rows, cols):
    # any size pair, up- or down-sampling: every output pixel feeding an input pixel lies
    # in the kernel's candidate window (a missed one would break the float64 equality)
    (h, H), (w, W) = rows, cols
    g = torch.randn(1, 1, H, W, dtype=torch.float64)
    grad_x = torch.ops.tritonvision.upsample_bilinear_backward(g, h, w)
    torch.testing.assert_close(grad_x, bilinear_matrix(h, H).T @ g @ bilinear_matrix(w, W),
                               rtol=1e-12, atol=1e-12)


@pytest.mark.kernel
def test_upsample_bilinear_add_int64_indexing_path(monkeypatch):
    # the int64-offset variant (tensors of 2**31+ elements) on a small input
    import tritonvision.ops.upsample as upsample_ops
    monkeypatch.setattr(upsample_ops, "needs_int64", lambda *tensors: True)
    x = torch.randn(1, 2, 3, 5, dtype=torch.float64, requires_grad=True)
    skip = torch.randn(1, 2, 6, 9, dtype=torch.float64).to(memory_format=torch.channels_last)
    out = upsample_bilinear_add(x, skip)
    ref, adjoint = reference_upsample_add(x.detach(), skip)
    torch.testing.assert_close(out, ref, **TOL[torch.float64])
    g = torch.randn(1, 2, 6, 9, dtype=torch.float64)
    torch.testing.assert_close(torch.autograd.grad(out, x, g)[0], adjoint(g), **TOL[torch.float64])


@pytest.mark.kernel
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_upsample_bilinear_add_small_tiles_split_rows_and_channels(monkeypatch, layout):
    # 4-element tiles: several column blocks per row and several channel blocks
    import tritonvision.ops.upsample as upsample_ops
    monkeypatch.setattr(upsample_ops, "MAX_TILE", 4)
    x = _layout(torch.randn(1, 3, 2, 3, dtype=torch.float64), layout).requires_grad_()
    skip = _layout(torch.randn(1, 3, 3, 6, dtype=torch.float64), layout)
    out = upsample_bilinear_add(x, skip)
    ref, adjoint = reference_upsample_add(x.detach(), skip)
    torch.testing.assert_close(out, ref, **TOL[torch.float64])
    g = torch.randn(1, 3, 3, 6, dtype=torch.float64)
    torch.testing.assert_close(torch.autograd.grad(out, x, g)[0], adjoint(g), **TOL[torch.float64])


def test_upsample_bilinear_add_grad_of_skip_only():
    x = torch.randn(1, 2, 3, 4)
    skip = torch.randn(1, 2, 6, 8, requires_grad=True)
    g = torch.randn(1, 2, 6, 8)
    assert torch.equal(torch.autograd.grad(upsample_bilinear_add(x, skip), skip, g)[0], g)


@pytest.mark.kernel
def test_upsample_bilinear_add_one_pixel_and_identity_scale():
    x = torch.randn(2, 2, 1, 1)
    skip = torch.randn(2, 2, 2, 2)
    torch.testing.assert_close(upsample_bilinear_add(x, skip), x.expand(2, 2, 2, 2) + skip)
    y = torch.randn(1, 3, 4, 5)
    skip1 = torch.randn(1, 3, 4, 5)
    torch.testing.assert_close(upsample_bilinear_add(y, skip1, scale_factor=1), y + skip1)


@pytest.mark.kernel
def test_upsample_bilinear_add_empty_batch():
    out = upsample_bilinear_add(torch.randn(0, 3, 2, 2), torch.randn(0, 3, 4, 4))
    assert out.shape == (0, 3, 4, 4)


def test_upsample_bilinear_add_errors_name_the_problem():
    x, skip = torch.randn(1, 3, 4, 4), torch.randn(1, 3, 8, 8)
    with pytest.raises(ValueError, match="upsample_bilinear_add: skip height 8 is not x height 4 upsampled"):
        upsample_bilinear_add(x, skip, scale_factor=4)
    with pytest.raises(ValueError, match="agree in batch and channels"):
        upsample_bilinear_add(x, torch.randn(1, 2, 8, 8))
    with pytest.raises(ValueError, match="4-D"):
        upsample_bilinear_add(x[0], skip[0])
    with pytest.raises(TypeError, match="upsample_bilinear_add: x must be a floating tensor"):
        upsample_bilinear_add(x.long(), skip)
    with pytest.raises(ValueError, match="scale_factor must be a positive int"):
        upsample_bilinear_add(x, skip, scale_factor=2.0)


@pytest.mark.kernel
def test_upsample_bilinear_add_opcheck():
    x = torch.randn(1, 2, 2, 3, requires_grad=True)
    skip = torch.randn(1, 2, 4, 5, requires_grad=True)
    torch.library.opcheck(torch.ops.tritonvision.upsample_bilinear_add.default, (x, skip))
    torch.library.opcheck(torch.ops.tritonvision.upsample_bilinear_backward.default,
                          (torch.randn(1, 2, 4, 5), 2, 3))


@pytest.mark.kernel
def test_upsample_bilinear_add_gradcheck_float64():
    x = torch.randn(1, 1, 3, 2, dtype=torch.float64, requires_grad=True)
    skip = torch.randn(1, 1, 5, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: upsample_bilinear_add(a, b), (x, skip), fast_mode=True)
    if not KERNEL_TEST_MODE:  # the double backward is torch's interpolation, no kernel to test
        assert torch.autograd.gradgradcheck(lambda a, b: upsample_bilinear_add(a, b), (x, skip), fast_mode=True)


@pytest.mark.kernel
def test_upsample_bilinear_add_compile_fullgraph():
    fn = torch.compile(lambda a, b: upsample_bilinear_add(a, b) * 2, fullgraph=True)
    x, skip = torch.randn(1, 2, 3, 4), torch.randn(1, 2, 6, 8)
    ref, _ = reference_upsample_add(x, skip)
    torch.testing.assert_close(fn(x, skip).double(), ref * 2, **TOL[torch.float32])


class _Decoder(torch.nn.Module):
    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return torch.ops.tritonvision.upsample_bilinear_add(x, skip)


@pytest.mark.kernel
def test_upsample_bilinear_add_export_and_script():
    x, skip = torch.randn(1, 2, 3, 4), torch.randn(1, 2, 6, 8)
    ref, _ = reference_upsample_add(x, skip)
    exported = torch.export.export(_Decoder(), (x, skip))
    torch.testing.assert_close(exported.module()(x, skip).double(), ref, **TOL[torch.float32])
    scripted = torch.jit.script(_Decoder())
    torch.testing.assert_close(scripted(x, skip).double(), ref, **TOL[torch.float32])


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_upsample_bilinear_add_cuda_fcn8s_shape(dtype):
    x = torch.randn(2, 21, 64, 64, device="cuda", dtype=dtype, requires_grad=True)
    skip = torch.randn(2, 21, 128, 128, device="cuda", dtype=dtype, requires_grad=True)
    out = upsample_bilinear_add(x, skip)
    ref = F.interpolate(x.double(), size=(128, 128), mode="bilinear", align_corners=False) + skip.double()
    torch.testing.assert_close(out.double(), ref, **TOL[dtype])
    g = torch.randn_like(out)
    gx, = torch.autograd.grad(out, x, g)
    rx, = torch.autograd.grad(ref, x, g.double())
    torch.testing.assert_close(gx.double(), rx.double(), **TOL[dtype])
