"""deconv_skip / deconv_concat against a naive float64 transposed convolution, plus the modules.

The reference scatters each weight tap of each input pixel onto an uncropped canvas and
crops ``padding`` off: the definition of ConvTranspose2d, written without conv_transpose2d.
Marked ``kernel`` tests run the Triton kernels in the interpreter pass (small shapes).
"""
from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from tritonvision.nn import DeconvConcat, DeconvSkip
from tritonvision.ops import deconv_concat, deconv_skip
from tritonvision.ops.deconv import triton_gemm_supported

from conftest import KERNEL_TEST_MODE

TOL = {torch.float32: dict(atol=1e-4, rtol=1e-4), torch.float16: dict(atol=2e-2, rtol=1e-2),
       torch.bfloat16: dict(atol=1e-1, rtol=2e-2), torch.float64: dict(atol=1e-10, rtol=1e-10)}

# (kernel_size, stride, padding, output_padding): the GEMM cases, then cuDNN-fallback shapes
GEMM_SHAPES = [(2, 2, 0, 0), (2, 2, 1, 1), (3, 2, 1, 1), (4, 2, 1, 0), (3, 2, 0, 0), (4, 4, 1, 3)]
FALLBACK_SHAPES = [(3, 1, 1, 0), (5, 2, 2, 1)]
# the interpreter is slow: there, each shape runs once, activations alternating
SKIP_CASES = ([(*shape, act) for shape in GEMM_SHAPES + FALLBACK_SHAPES for act in (None, "relu")]
              if not KERNEL_TEST_MODE else
              [(*shape, ("relu", None)[i % 2]) for i, shape in enumerate(GEMM_SHAPES[:5] + FALLBACK_SHAPES[1:])])


def reference_deconv(x, weight, bias, stride, padding, output_padding):
    """conv_transpose2d by definition, float64: out[oh, ow] += x[h, w] * W[kh, kw] at oh = h*s - p + kh."""
    x, weight = x.double(), weight.double()
    b, _, h, w = x.shape
    cout, k = weight.shape[1], weight.shape[2]
    hout = (h - 1) * stride - 2 * padding + k + output_padding
    wout = (w - 1) * stride - 2 * padding + k + output_padding
    canvas = x.new_zeros(b, cout, max((h - 1) * stride + k, padding + hout), max((w - 1) * stride + k, padding + wout))
    for kh in range(k):
        for kw in range(k):
            tap = torch.einsum("bchw,cd->bdhw", x, weight[:, :, kh, kw])
            canvas[:, :, kh:kh + (h - 1) * stride + 1:stride, kw:kw + (w - 1) * stride + 1:stride] += tap
    out = canvas[:, :, padding:padding + hout, padding:padding + wout]
    return out if bias is None else out + bias.double()[None, :, None, None]


def _inputs(b, cin, cout, h, w, k, s, p, op, dtype=torch.float32, cskip=None, bias=True):
    x = torch.randn(b, cin, h, w)
    weight = torch.randn(cin, cout, k, k) / (cin * max(1, (k // s)) ** 2) ** 0.5
    hout, wout = (h - 1) * s - 2 * p + k + op, (w - 1) * s - 2 * p + k + op
    skip = torch.randn(b, cout if cskip is None else cskip, hout, wout)
    bias_t = torch.randn(cout) if bias else None
    return [None if t is None else t.to(dtype).requires_grad_() for t in (x, weight, bias_t, skip)]


def _check_grads(ours, ref_leaves, our_leaves, dtype):
    g = torch.randn_like(ours[1])
    ours[0].backward(g.to(ours[0].dtype))
    ours[1].backward(g)
    for mine, theirs in zip(our_leaves, ref_leaves):
        if mine is None:
            continue
        scale = max(1.0, theirs.grad.abs().max().item())
        torch.testing.assert_close(mine.grad.double() / scale, theirs.grad / scale, **TOL[dtype])


def _ref_leaves(*tensors):
    return [None if t is None else t.detach().double().requires_grad_() for t in tensors]


# ----------------------------------------------------------------------------- values and gradients
@pytest.mark.kernel
@pytest.mark.parametrize("k,s,p,op,activation", SKIP_CASES)
def test_deconv_skip_values_and_grads_match_float64_reference(k, s, p, op, activation):
    b, cin, cout, h, w = (1, 5, 19, 5, 7) if activation else (2, 20, 3, 3, 4)
    x, weight, bias, skip = _inputs(b, cin, cout, h, w, k, s, p, op)
    out = deconv_skip(x, weight, bias, skip, s, p, op, activation)
    rx, rw, rb, rs = _ref_leaves(x, weight, bias, skip)
    ref = reference_deconv(rx, rw, rb, s, p, op) + rs
    ref = torch.relu(ref) if activation else ref
    assert out.shape == ref.shape and out.dtype == torch.float32
    torch.testing.assert_close(out.double(), ref, **TOL[torch.float32])
    _check_grads((out, ref), [rx, rw, rb, rs], [x, weight, bias, skip], torch.float32)


@pytest.mark.kernel
@pytest.mark.parametrize("k,s,p,op", [(2, 2, 0, 0), (3, 2, 1, 1), (5, 2, 2, 1)])
def test_deconv_int64_offset_variant_matches_float64_reference(monkeypatch, k, s, p, op):
    # the INT64 kernels (tensors of 2**31+ elements) on a small input; (5, 2) is the fallback's add/act
    import tritonvision.ops.deconv as deconv_ops
    monkeypatch.setattr(deconv_ops, "needs_int64", lambda *tensors: True)
    x, weight, bias, skip = _inputs(2, 5, 7, 4, 3, k, s, p, op)
    out = deconv_skip(x, weight, bias, skip, s, p, op, "relu")
    rx, rw, rb, rs = _ref_leaves(x, weight, bias, skip)
    ref = torch.relu(reference_deconv(rx, rw, rb, s, p, op) + rs)
    torch.testing.assert_close(out.double(), ref, **TOL[torch.float32])
    _check_grads((out, ref), [rx, rw, rb, rs], [x, weight, bias, skip], torch.float32)


@pytest.mark.kernel
@pytest.mark.parametrize("k,s,p,op", [(2, 2, 0, 0), (3, 2, 1, 1), (3, 1, 1, 0)])
def test_deconv_skip_without_skip_or_bias_is_plain_conv_transpose(k, s, p, op):
    x, weight, _, _ = _inputs(2, 4, 6, 4, 3, k, s, p, op, bias=False)
    out = deconv_skip(x, weight, None, None, s, p, op)
    rx, rw = _ref_leaves(x, weight)
    ref = reference_deconv(rx, rw, None, s, p, op)
    torch.testing.assert_close(out.double(), ref, **TOL[torch.float32])
    _check_grads((out, ref), [rx, rw], [x, weight], torch.float32)


@pytest.mark.kernel
@pytest.mark.parametrize("k,s,p,op,activation", [(2, 2, 0, 0, "relu"), (4, 2, 1, 0, None), (5, 2, 2, 1, "relu")])
def test_deconv_concat_writes_activated_deconv_then_skip(k, s, p, op, activation):
    x, weight, bias, skip = _inputs(2, 6, 5, 3, 5, k, s, p, op, cskip=3)
    out = deconv_concat(x, weight, bias, skip, s, p, op, activation)
    rx, rw, rb, rs = _ref_leaves(x, weight, bias, skip)
    up = reference_deconv(rx, rw, rb, s, p, op)
    ref = torch.cat([torch.relu(up) if activation else up, rs], dim=1)
    assert out.shape == ref.shape
    torch.testing.assert_close(out.double(), ref, **TOL[torch.float32])
    assert torch.equal(out[:, 5:], skip.detach())  # the skip is copied, not recomputed
    _check_grads((out, ref), [rx, rw, rb, rs], [x, weight, bias, skip], torch.float32)


@pytest.mark.kernel
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_forward_and_backward_close_to_float64(dtype):
    x, weight, bias, skip = _inputs(2, 16, 8, 4, 5, 2, 2, 0, 0, dtype=dtype)
    out = deconv_skip(x, weight, bias, skip, 2, 0, 0, "relu")
    assert out.dtype == dtype
    rx, rw, rb, rs = _ref_leaves(x, weight, bias, skip)
    ref = torch.relu(reference_deconv(rx, rw, rb, 2, 0, 0) + rs)
    torch.testing.assert_close(out.double(), ref, **TOL[dtype])
    g = torch.randn_like(ref)
    out.backward(g.to(dtype))
    ref.backward(g)
    # rounding of out near 0 may flip the relu mask on a few elements: compare where |ref| is clear of 0
    clear = (ref.detach().abs() > 0.05).all()
    for mine, theirs in ((x, rx), (weight, rw)):
        scale = max(1.0, theirs.grad.abs().max().item())
        if clear:
            torch.testing.assert_close(mine.grad.double() / scale, theirs.grad / scale, atol=5e-2, rtol=5e-2)
        else:
            assert (mine.grad.double() - theirs.grad).abs().mean() / scale < 2e-2


@pytest.mark.kernel
@pytest.mark.parametrize("k,s,p,op", [(2, 2, 0, 0), (3, 2, 1, 1)])
def test_channels_last_input_gives_channels_last_output_and_same_values(k, s, p, op):
    x, weight, bias, skip = _inputs(2, 6, 5, 4, 3, k, s, p, op)
    x_cl = x.detach().to(memory_format=torch.channels_last).requires_grad_()
    skip_cl = skip.detach().to(memory_format=torch.channels_last)
    out = deconv_skip(x_cl, weight, bias, skip_cl, s, p, op, "relu")
    assert out.is_contiguous(memory_format=torch.channels_last)
    ref = torch.relu(reference_deconv(x, weight, bias, s, p, op) + skip.double())
    torch.testing.assert_close(out.double(), ref, **TOL[torch.float32])
    out.sum().backward()
    assert x_cl.grad.is_contiguous(memory_format=torch.channels_last)
    cat = deconv_concat(x_cl, weight, bias, skip_cl, s, p, op)
    assert cat.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(cat[:, :5].double(), reference_deconv(x, weight, bias, s, p, op), **TOL[torch.float32])


@pytest.mark.kernel
def test_non_contiguous_skip_and_weight_views():
    x, weight, bias, skip = (t.detach() for t in _inputs(1, 4, 6, 3, 3, 2, 2, 0, 0))
    skip_t = skip.transpose(2, 3).contiguous().transpose(2, 3)        # same values, odd strides
    weight_big = torch.randn(4, 12, 2, 2)
    weight_big[:, ::2] = weight
    out = deconv_skip(x, weight_big[:, ::2], bias, skip_t, 2, 0, 0)
    ref = reference_deconv(x, weight, bias, 2, 0, 0) + skip.double()
    torch.testing.assert_close(out.double(), ref, **TOL[torch.float32])


@pytest.mark.kernel
@pytest.mark.parametrize("trainable", ["x", "weight"])
def test_grads_when_only_some_inputs_require_them(trainable):
    x, weight, bias, skip = (t.detach() for t in _inputs(1, 5, 4, 3, 4, 4, 2, 1, 0))
    leaf = {"x": x, "weight": weight}[trainable].requires_grad_()
    out = deconv_concat(x, weight, bias, skip, 2, 1, 0, "relu")
    g = torch.randn_like(out)
    (grad,) = torch.autograd.grad(out, leaf, g)
    rx, rw = _ref_leaves(x, weight)
    ref = torch.relu(reference_deconv(rx, rw, bias, 2, 1, 0))
    (expected,) = torch.autograd.grad(ref, {"x": rx, "weight": rw}[trainable], g[:, :4].double())
    torch.testing.assert_close(grad.double(), expected, **TOL[torch.float32])


@pytest.mark.kernel
def test_raw_op_with_mixed_dtypes_computes_in_the_dtype_of_x():
    x, weight, bias, skip = _inputs(1, 6, 5, 3, 3, 2, 2, 0, 0)
    x_bf16 = x.detach().bfloat16().requires_grad_()
    out = torch.ops.tritonvision.deconv_skip(x_bf16, weight, bias, skip, 2, 0, 0, "none")
    assert out.dtype == torch.bfloat16
    rx, rw, rb, rs = _ref_leaves(x_bf16, weight, bias, skip)
    ref = reference_deconv(rx, rw, rb, 2, 0, 0) + rs
    torch.testing.assert_close(out.double(), ref, **TOL[torch.bfloat16])
    g = torch.randn_like(ref)
    out.backward(g.bfloat16())
    ref.backward(g)
    assert weight.grad.dtype == torch.float32 and x_bf16.grad.dtype == torch.bfloat16
    scale = rw.grad.abs().max().item()
    torch.testing.assert_close(weight.grad.double() / scale, rw.grad / scale, atol=3e-2, rtol=3e-2)


@pytest.mark.kernel
def test_empty_batch_gives_empty_output_and_zero_grads():
    x, weight, bias, skip = _inputs(0, 4, 3, 5, 5, 2, 2, 0, 0)
    out = deconv_skip(x, weight, bias, skip, 2, 0, 0, "relu")
    assert out.shape == (0, 3, 10, 10)
    out.sum().backward()
    assert torch.equal(weight.grad, torch.zeros_like(weight)) and torch.equal(bias.grad, torch.zeros_like(bias))


@settings(deadline=None, max_examples=4 if KERNEL_TEST_MODE else 12)
@given(b=st.integers(1, 2), cin=st.integers(1, 9), cout=st.integers(1, 9), h=st.integers(1, 5), w=st.integers(1, 5),
       shape=st.sampled_from(GEMM_SHAPES + FALLBACK_SHAPES + [(16, 8, 4, 0), (3, 3, 0, 2), (5, 3, 1, 2)]),
       relu=st.booleans())
@pytest.mark.kernel
def test_random_shapes_match_reference(b, cin, cout, h, w, shape, relu):
    k, s, p, op = shape
    if (h - 1) * s - 2 * p + k + op <= 0 or (w - 1) * s - 2 * p + k + op <= 0:
        return
    x, weight, bias, skip = (t.detach() for t in _inputs(b, cin, cout, h, w, k, s, p, op))
    out = deconv_skip(x, weight, bias, skip, s, p, op, "relu" if relu else None)
    ref = reference_deconv(x, weight, bias, s, p, op) + skip.double()
    torch.testing.assert_close(out.double(), torch.relu(ref) if relu else ref, **TOL[torch.float32])


def test_gemm_path_covers_the_decoder_shapes_and_not_the_fallbacks():
    for k, s, _, _ in GEMM_SHAPES + [(16, 8, 4, 0), (64, 32, 16, 0)]:
        assert triton_gemm_supported(torch.float32, k, s)
    for k, s, _, _ in FALLBACK_SHAPES:
        assert not triton_gemm_supported(torch.float32, k, s)
    assert not triton_gemm_supported(torch.float64, 2, 2)


# ----------------------------------------------------------------------------- autograd / library checks
# float64 runs cuDNN / aten + the add-act epilogue (the GEMM kernels take 16/32-bit floats): this checks
# the autograd formulas; the kernels' gradients are checked against the float64 reference above.
@pytest.mark.parametrize("k,s,p,op", [(2, 2, 0, 0), (3, 2, 1, 1)])
def test_gradcheck_float64(k, s, p, op):
    x, weight, bias, skip = _inputs(1, 2, 3, 2, 3, k, s, p, op, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda *a: deconv_skip(*a, s, p, op, "relu"), (x, weight, bias, skip))
    assert torch.autograd.gradcheck(lambda *a: deconv_concat(*a, s, p, op, "relu"),
                                    (x, weight, bias, skip[:, :2].detach().clone().requires_grad_()))


@pytest.mark.kernel
def test_opcheck():
    x, weight, bias, skip = (t.detach() for t in _inputs(1, 2, 3, 2, 2, 3, 2, 1, 1))
    fast = ("test_schema", "test_faketensor", "test_aot_dispatch_static")   # the interpreter is slow
    torch.library.opcheck(torch.ops.tritonvision.deconv_concat.default, (x, weight, None, skip, 2, 1, 1, "none"),
                          test_utils=fast)
    for t in (x, weight, bias, skip):
        t.requires_grad_()
    torch.library.opcheck(torch.ops.tritonvision.deconv_skip.default, (x, weight, bias, skip, 2, 1, 1, "relu"))
    torch.library.opcheck(torch.ops.tritonvision.deconv_concat.default, (x, weight, bias, skip, 2, 1, 1, "relu"),
                          **(dict(test_utils=fast) if KERNEL_TEST_MODE else {}))
    g = torch.randn_like(skip)
    torch.library.opcheck(torch.ops.tritonvision.deconv_backward.default,
                          (g, x.detach(), weight.detach(), 2, 1, 1, True, True), test_utils=fast)


class _Decoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.up1 = DeconvSkip(6, 4, activation="relu")
        self.up2 = DeconvConcat(4, 3, kernel_size=3, stride=2, padding=1, output_padding=1)

    def forward(self, x, skip1, skip2):
        return self.up2(self.up1(x, skip1), skip2)


def _decoder_inputs():
    return torch.randn(1, 6, 3, 2), torch.randn(1, 4, 6, 4), torch.randn(1, 2, 12, 8)


def _decoder_reference(model, x, skip1, skip2):
    y = torch.relu(reference_deconv(x, model.up1.weight, model.up1.bias, 2, 0, 0) + skip1.double())
    return torch.cat([reference_deconv(y, model.up2.weight, model.up2.bias, 2, 1, 1), skip2.double()], 1)


@pytest.mark.kernel
def test_compile_fullgraph_forward_and_backward():
    model = _Decoder()
    inputs = _decoder_inputs()
    compiled = torch.compile(model, fullgraph=True)
    out = compiled(*inputs)
    torch.testing.assert_close(out.double(), _decoder_reference(model, *inputs), **TOL[torch.float32])
    out.square().sum().backward()
    grad_compiled = model.up1.weight.grad.clone()
    model.zero_grad()
    _decoder_reference(model, *inputs).square().sum().backward()
    torch.testing.assert_close(grad_compiled, model.up1.weight.grad, atol=1e-4, rtol=1e-4)


@pytest.mark.kernel
def test_export_round_trip():
    model = _Decoder()
    inputs = _decoder_inputs()
    exported = torch.export.export(model, inputs)
    assert any("tritonvision.deconv_concat" in str(n.target) for n in exported.graph.nodes)
    torch.testing.assert_close(exported.module()(*inputs).double(), _decoder_reference(model, *inputs),
                               **TOL[torch.float32])


@pytest.mark.kernel
def test_jit_script_round_trip():
    model = _Decoder()
    scripted = torch.jit.script(model)
    inputs = _decoder_inputs()
    torch.testing.assert_close(scripted(*inputs).double(), _decoder_reference(model, *inputs), **TOL[torch.float32])


def test_autocast_runs_in_the_autocast_dtype():
    x, weight, bias, skip = (t.detach() for t in _inputs(2, 8, 4, 3, 3, 2, 2, 0, 0))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = deconv_skip(x, weight, bias, skip, activation="relu")
        cat = DeconvConcat(8, 4)(x, skip)
    assert out.dtype == torch.bfloat16 and cat.dtype == torch.bfloat16
    ref = torch.relu(reference_deconv(x, weight, bias, 2, 0, 0) + skip.double())
    torch.testing.assert_close(out.double(), ref, **TOL[torch.bfloat16])


# ----------------------------------------------------------------------------- modules
def test_modules_have_conv_transpose_parameters_and_init():
    torch.manual_seed(7)
    theirs = nn.ConvTranspose2d(6, 4, 3, stride=2, padding=1, output_padding=1)
    torch.manual_seed(7)
    ours = DeconvSkip(6, 4, 3, stride=2, padding=1, output_padding=1)
    assert dict(ours.named_parameters()).keys() == dict(theirs.named_parameters()).keys()
    assert torch.equal(ours.weight, theirs.weight) and torch.equal(ours.bias, theirs.bias)
    assert DeconvConcat(6, 4, bias=False).bias is None


@pytest.mark.parametrize("cls", [DeconvSkip, DeconvConcat])
def test_load_state_dict_from_conv_transpose_and_fused_equals_unfused(cls):
    conv = nn.ConvTranspose2d(5, 3, 4, stride=2, padding=1)
    layer = cls(5, 3, 4, stride=2, padding=1, activation="relu")
    layer.load_state_dict(conv.state_dict())
    x, skip = torch.randn(2, 5, 3, 4), torch.randn(2, 3, 6, 8)
    expected = torch.relu(conv(x) + skip) if cls is DeconvSkip else torch.cat([torch.relu(conv(x)), skip], 1)
    torch.testing.assert_close(layer(x, skip), expected)
    layer.fused = False
    torch.testing.assert_close(layer(x, skip), expected)


# ----------------------------------------------------------------------------- errors
@pytest.mark.parametrize("kwargs,error,match", [
    (dict(weight=torch.randn(5, 3, 2, 2)), ValueError, "weight must have shape"),
    (dict(weight=torch.randn(4, 3, 2, 3)), ValueError, "square kernel"),
    (dict(bias=torch.randn(4)), ValueError, "bias must have shape"),
    (dict(skip=torch.randn(1, 3, 7, 8)), ValueError, "skip must have shape"),
    (dict(output_padding=2), ValueError, "output_padding < stride"),
    (dict(stride=(2, 2)), TypeError, "stride must be an int"),
    (dict(activation="gelu"), ValueError, "activation must be None or 'relu'"),
    (dict(skip=torch.randn(1, 3, 8, 8, dtype=torch.float64)), TypeError, "skip has dtype"),
    (dict(x=torch.randint(0, 3, (1, 4, 4, 4))), TypeError, "x must be a floating tensor"),
    (dict(padding=5), ValueError, "output size"),
])
def test_bad_arguments_raise_clear_errors(kwargs, error, match):
    args = dict(x=torch.randn(1, 4, 4, 4), weight=torch.randn(4, 3, 2, 2), bias=None, skip=None)
    args.update(kwargs)
    with pytest.raises(error, match=match):
        deconv_skip(**args)


def test_concat_requires_a_skip_of_matching_size():
    with pytest.raises(ValueError, match="skip is required"):
        deconv_concat(torch.randn(1, 4, 4, 4), torch.randn(4, 3, 2, 2), None, None)
    with pytest.raises(ValueError, match=r"\[B, C_skip, H_out, W_out\]"):
        deconv_concat(torch.randn(1, 4, 4, 4), torch.randn(4, 3, 2, 2), None, torch.randn(1, 5, 9, 8))


# ----------------------------------------------------------------------------- GPU
@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.float64])
@pytest.mark.parametrize("k,s,p,op", [(2, 2, 0, 0), (3, 2, 1, 1), (4, 2, 1, 0), (5, 2, 2, 1)])
@pytest.mark.parametrize("channels_last", [False, True])
def test_cuda_matches_float64_reference(dtype, k, s, p, op, channels_last):
    torch.backends.cudnn.allow_tf32 = False        # IEEE float32 here; TF32 has its own test below
    tensors = _inputs(2, 70, 45, 17, 13, k, s, p, op, dtype=dtype)
    x, weight, bias, skip = [t.detach().cuda().requires_grad_() for t in tensors]
    if channels_last:
        x = x.detach().to(memory_format=torch.channels_last).requires_grad_()
    out = deconv_skip(x, weight, bias, skip, s, p, op)
    rx, rw, rb, rs = _ref_leaves(x, weight, bias, skip)
    ref = reference_deconv(rx, rw, rb, s, p, op) + rs
    torch.testing.assert_close(out.double(), ref, **TOL[dtype])
    _check_grads((out, ref), [rx, rw, rb, rs], [x, weight, bias, skip], dtype)
    cat = deconv_concat(x.detach(), weight.detach(), bias.detach(), skip.detach(), s, p, op, "relu")
    torch.testing.assert_close(cat[:, :45].double(), torch.relu(ref.detach() - rs.detach()), **TOL[dtype])


TF32_PRODUCT_ERROR = 2.0 ** -9 + 2.0 ** -20
"""|round(a) round(b) - a b| / |a b| when TF32 keeps 10 of float32's 23 mantissa bits: each
operand is off by less than 2^-10 relative even if truncated (2^-11 if rounded), so the product
by less than 2 * 2^-10 + 2^-20."""
FP32_UNIT = 2.0 ** -24
"""float32's unit roundoff: a sum of K products accumulated in float32 is off by at most about
K * 2^-24 times the sum of their magnitudes."""


def tf32_bound(magnitude: torch.Tensor, terms: int) -> torch.Tensor:
    """Worst-case error of a TF32 dot product accumulated in float32, elementwise: ``magnitude``
    is sum |a_i| |b_i| (the same contraction on absolute values, float64), ``terms`` the longest
    sum. No sqrt(K) averaging: a bound, so the test cannot fail by chance."""
    return (TF32_PRODUCT_ERROR + (terms + 2) * FP32_UNIT) * magnitude


@pytest.mark.gpu
@pytest.mark.parametrize("k,s,p,op", [(2, 2, 0, 0), (3, 2, 1, 1), (4, 2, 1, 0), (4, 4, 1, 3)])
def test_cuda_tf32_deconv_within_the_tf32_error_bound_of_float64(k, s, p, op):
    """Training's default (cudnn.allow_tf32): forward and every gradient of the phase-GEMM kernels
    within the TF32 bound of the float64 reference. (Not the cuDNN fallback: cuDNN may pick
    Winograd or FFT algorithms, whose error is not a dot product's; it is checked in IEEE
    float32 by test_cuda_matches_float64_reference.)"""
    torch.backends.cudnn.allow_tf32 = True
    b, cin, cout, h, w = 2, 96, 40, 19, 23
    tensors = _inputs(b, cin, cout, h, w, k, s, p, op)
    x, weight, bias, skip = [t.detach().cuda().requires_grad_() for t in tensors]
    out = deconv_skip(x, weight, bias, skip, s, p, op)
    g = torch.randn_like(out)
    grads = torch.autograd.grad(out, (x, weight, bias, skip), g)
    rx, rw, rb, rs = _ref_leaves(x, weight, bias, skip)
    ref = reference_deconv(rx, rw, rb, s, p, op) + rs
    ref_grads = torch.autograd.grad(ref, (rx, rw, rb, rs), g.double())
    # the same contractions on absolute values give each entry's sum of |products|
    ax, aw, ab, askip = _ref_leaves(*(t.abs() for t in (x, weight, bias, skip)))
    magnitude = reference_deconv(ax, aw, ab, s, p, op) + askip
    magnitude_grads = torch.autograd.grad(magnitude, (ax, aw, ab, askip), g.double().abs())
    terms = max(cin * k * k, cout * k * k, b * h * w * k * k)
    for name, mine, theirs, size in zip(("out", "grad_x", "grad_weight", "grad_bias", "grad_skip"),
                                        (out, *grads), (ref, *ref_grads), (magnitude, *magnitude_grads)):
        error = (mine.double() - theirs.detach()).abs()
        bound = tf32_bound(size.detach(), terms)
        assert (error <= bound).all(), (name, (error / bound.clamp_min(1e-30)).max().item())
