"""Models: fused and plain-torch paths agree; compile (no graph break), export, script,
channels-last + bf16; the YOLO loss against a naive per-box reference."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from tritonvision.models import FCN8s, SimpleFCN, UNet, YOLO, YOLOInference, yolo_loss

SEG_CASES = [
    pytest.param(SimpleFCN, dict(num_classes=3, width=4, depth=2), 8, id="simple_fcn"),
    pytest.param(FCN8s, dict(num_classes=3, width=4, depth=3), 8, id="fcn8s"),
    pytest.param(UNet, dict(num_classes=3, width=4, depth=2), 8, id="unet_same"),
    pytest.param(UNet, dict(num_classes=3, width=2, depth=1, padding="valid"), 20, id="unet_valid"),
]


def _pair(cls, kwargs):
    fused = cls(**kwargs, fused=True)
    plain = cls(**kwargs, fused=False)
    plain.load_state_dict(fused.state_dict())
    return fused, plain


# ----------------------------------------------------------------------------- fused == plain
@pytest.mark.kernel
@pytest.mark.parametrize("cls, kwargs, size", SEG_CASES)
def test_fused_and_plain_models_agree_in_outputs_and_gradients(cls, kwargs, size):
    fused, plain = _pair(cls, kwargs)
    assert fused.state_dict().keys() == plain.state_dict().keys()
    x = torch.rand(2, 3, size, size)
    out_f, out_p = fused(x), plain(x)
    torch.testing.assert_close(out_f, out_p, atol=1e-4, rtol=1e-4)
    weight = torch.randn_like(out_p)
    (out_f * weight).sum().backward()
    (out_p * weight).sum().backward()
    for (name, p_f), (_, p_p) in zip(fused.named_parameters(), plain.named_parameters()):
        torch.testing.assert_close(p_f.grad, p_p.grad, atol=1e-4, rtol=1e-4, msg=name)


def test_fcn8s_decoder_channels_match_the_encoder_maps_they_are_added_to():
    model = FCN8s(num_classes=5, width=3, depth=3)
    # deconvs: 12 -> 12 (added to stage 3), 12 -> 6 (stage 2); 1x1 reduce 6 -> 3 (stage 1)
    assert [tuple(s.weight.shape[:2]) for s in model.decoder] == [(12, 12), (12, 6)]
    assert tuple(model.reduce.weight.shape[:2]) == (3, 6)
    assert model(torch.rand(1, 3, 16, 24)).shape == (1, 5, 16, 24)


def test_unet_valid_padding_output_size_is_the_papers():
    model = UNet(1, 2, width=2, depth=4, padding="valid")
    assert model.output_size(572, 572) == (388, 388)   # Ronneberger et al., Fig. 1
    small = UNet(3, 2, width=2, depth=2, padding="valid")
    h, w = small.output_size(44, 60)
    assert small(torch.rand(1, 3, 44, 60)).shape == (1, 2, h, w) and (h, w) == (4, 20)


def test_models_reject_sizes_they_cannot_upsample_back():
    with pytest.raises(ValueError, match="FCN8s.*divisible by 8"):
        FCN8s(2, width=2)(torch.rand(1, 3, 12, 16))
    with pytest.raises(ValueError, match="YOLO.*multiples of the model stride"):
        YOLO(2, width=2, stride=8)(torch.rand(1, 3, 20, 16))


# ----------------------------------------------------------------------------- compile / export / script
def test_unet_training_step_compiles_in_one_graph_and_matches_eager():
    model = UNet(3, 3, width=4, depth=2, batch_norm=True)
    eager = UNet(3, 3, width=4, depth=2, batch_norm=True, fused=False)
    eager.load_state_dict(model.state_dict())
    x, target = torch.rand(2, 3, 8, 8), torch.randint(0, 3, (2, 8, 8))

    def step(net, images, masks):
        return F.cross_entropy(net(images), masks)

    graphs = []

    def counting_aot_eager(gm, example_inputs):  # counts the graphs dynamo hands over
        graphs.append(gm)
        return torch._dynamo.lookup_backend("aot_eager")(gm, example_inputs)

    torch._dynamo.reset()
    compiled = torch.compile(step, backend=counting_aot_eager)
    loss_c = compiled(model, x, target)
    assert len(graphs) == 1, f"{len(graphs)} graphs: the training step has graph breaks"
    loss_c.backward()
    loss_e = step(eager, x, target)
    loss_e.backward()
    torch.testing.assert_close(loss_c, loss_e, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(model.up[0].weight.grad, eager.up[0].weight.grad, atol=1e-5, rtol=1e-4)


def test_fcn8s_exports_and_scripts_with_the_same_outputs():
    model = FCN8s(3, width=4, depth=2).eval()
    x = torch.rand(2, 3, 8, 8)
    expected = model(x)
    exported = torch.export.export(model, (x,))
    torch.testing.assert_close(exported.module()(x), expected)
    scripted = torch.jit.script(model)
    torch.testing.assert_close(scripted(x), expected)


@pytest.mark.parametrize("cls, kwargs, size", SEG_CASES[:1] + SEG_CASES[2:])
def test_seg_models_script_and_export(cls, kwargs, size):
    model = cls(**kwargs).eval()
    x = torch.rand(1, 3, size, size)
    torch.testing.assert_close(torch.jit.script(model)(x), model(x))
    torch.testing.assert_close(torch.export.export(model, (x,)).module()(x), model(x))


@pytest.mark.parametrize("make", [lambda: UNet(3, 3, width=4, depth=2, batch_norm=True),
                                  lambda: FCN8s(3, width=4, depth=2),
                                  lambda: SimpleFCN(3, width=4, depth=2)],
                         ids=["unet", "fcn8s", "simple_fcn"])
def test_channels_last_and_bf16_autocast_track_float32(make):
    model = make().eval()
    x = torch.rand(2, 3, 16, 16)
    reference = model(x)
    cl_model = model.to(memory_format=torch.channels_last)
    out_cl = cl_model(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(out_cl, reference, atol=1e-4, rtol=1e-4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out_bf16 = cl_model(x.contiguous(memory_format=torch.channels_last))
    assert out_bf16.dtype == torch.bfloat16
    torch.testing.assert_close(out_bf16.float(), reference, atol=0.1, rtol=0.05)


# ----------------------------------------------------------------------------- YOLO
def test_yolo_output_layout_and_multi_scale_grid():
    v1 = YOLO(3, grid_size=2, boxes_per_cell=2, width=4, stride=8)
    assert v1(torch.rand(2, 3, 16, 16)).shape == (2, 2, 2, 2 * 5 + 3)
    assert v1(torch.rand(1, 3, 24, 40)).shape == (1, 3, 5, 13)      # any multiple of the stride
    v2 = YOLO(3, width=4, stride=8, anchors=[(1, 1), (2, 1), (1, 3)], passthrough=True)
    assert v2(torch.rand(1, 3, 32, 16)).shape == (1, 4, 2, 3 * (5 + 3))


def _naive_yolo_loss(outputs, boxes, labels, image_size, num_classes, b, anchors=None,
                     lambda_coord=5.0, lambda_noobj=0.5):
    """The YOLOv1 loss, one object at a time in float64 (independent reference)."""
    out = outputs.double()
    n, sy, sx, _ = out.shape
    height, width = image_size
    sig = torch.sigmoid

    def pred(i, r, c, j):
        if anchors is None:
            t = out[i, r, c, j * 5:(j + 1) * 5]
            w, h = sig(t[2]) ** 2, sig(t[3]) ** 2
        else:
            t = out[i, r, c, j * (5 + num_classes):(j + 1) * (5 + num_classes)]
            w, h = anchors[j][0] * math.exp(t[2]) / sx, anchors[j][1] * math.exp(t[3]) / sy
        return t, ((c + sig(t[0])) / sx, (r + sig(t[1])) / sy, w, h)

    def iou(a, g):
        ax1, ay1, ax2, ay2 = a[0] - a[2] / 2, a[1] - a[3] / 2, a[0] + a[2] / 2, a[1] + a[3] / 2
        gx1, gy1, gx2, gy2 = g[0] - g[2] / 2, g[1] - g[3] / 2, g[0] + g[2] / 2, g[1] + g[3] / 2
        inter = max(0.0, min(ax2, gx2) - max(ax1, gx1)) * max(0.0, min(ay2, gy2) - max(ay1, gy1))
        union = a[2] * a[3] + g[2] * g[3] - inter
        return float(inter / union) if union > 0 else 0.0

    slots, cells = {}, {}
    for i in range(n):
        for k in range(len(labels[i])):
            x1, y1, x2, y2 = [float(v) for v in boxes[i][k]]
            g = ((x1 + x2) / 2 / width, (y1 + y2) / 2 / height, (x2 - x1) / width, (y2 - y1) / height)
            c, r = min(int(g[0] * sx), sx - 1), min(int(g[1] * sy), sy - 1)
            ious = [iou([float(v) for v in pred(i, r, c, j)[1]], g) for j in range(b)]
            if anchors is None:
                j = max(range(b), key=lambda q: (ious[q], -q))
            else:
                shape = [iou((0, 0, anchors[q][0] / sx, anchors[q][1] / sy), (0, 0, g[2], g[3]))
                         for q in range(b)]
                j = max(range(b), key=lambda q: (shape[q], -q))
            slots[(i, r, c, j)] = (g, c, r, ious[j], int(labels[i][k]))
            cells[(i, r, c)] = int(labels[i][k])
    total = torch.zeros((), dtype=torch.float64)
    for i in range(n):
        for r in range(sy):
            for c in range(sx):
                for j in range(b):
                    t, _ = pred(i, r, c, j)
                    conf = sig(t[4])
                    if (i, r, c, j) not in slots:
                        total = total + lambda_noobj * conf ** 2
                        continue
                    g, col, row, iou_j, label = slots[(i, r, c, j)]
                    if anchors is None:
                        size_err = ((sig(t[2]) - math.sqrt(g[2])) ** 2 + (sig(t[3]) - math.sqrt(g[3])) ** 2)
                    else:
                        size_err = ((t[2] - math.log(g[2] * sx / anchors[j][0])) ** 2
                                    + (t[3] - math.log(g[3] * sy / anchors[j][1])) ** 2)
                        probs = torch.softmax(t[5:], 0)
                        total = total + ((probs - F.one_hot(torch.tensor(label), num_classes)) ** 2).sum()
                    total = total + lambda_coord * ((sig(t[0]) - (g[0] * sx - col)) ** 2
                                                    + (sig(t[1]) - (g[1] * sy - row)) ** 2 + size_err)
                    total = total + (conf - iou_j) ** 2
                if anchors is None and (i, r, c) in cells:
                    probs = torch.softmax(out[i, r, c, b * 5:], 0)
                    onehot = F.one_hot(torch.tensor(cells[(i, r, c)]), num_classes)
                    total = total + ((probs - onehot) ** 2).sum()
    return total / n


def _random_targets(n, size, num_classes, max_objects=4):
    targets = []
    for _ in range(n):
        k = int(torch.randint(0, max_objects + 1, ()))
        xy = torch.rand(k, 2) * size * 0.8
        wh = torch.rand(k, 2) * size * 0.5 + 1
        targets.append({"boxes": torch.cat([xy, (xy + wh).clamp(max=size)], 1),
                        "labels": torch.randint(0, num_classes, (k,))})
    targets[0]["boxes"] = torch.cat([targets[0]["boxes"], torch.tensor([[1.0, 1, 5, 6], [1.5, 2, 4, 7]])])
    targets[0]["labels"] = torch.cat([targets[0]["labels"], torch.tensor([0, 1])])  # same cell
    return targets


@pytest.mark.parametrize("anchors", [None, [(1.0, 1.0), (2.5, 1.5)]], ids=["v1", "v2_anchors"])
def test_yolo_loss_matches_a_naive_per_object_reference(anchors):
    num_classes, b, s, stride = 3, 2, 3, 8
    outputs = torch.randn(2, s, s, b * 5 + num_classes if anchors is None else b * (5 + num_classes))
    targets = _random_targets(2, s * stride, num_classes)
    expected = _naive_yolo_loss(outputs, [t["boxes"] for t in targets], [t["labels"] for t in targets],
                                (s * stride, s * stride), num_classes, b, anchors)
    anchor_t = None if anchors is None else torch.tensor(anchors)
    loss = yolo_loss(outputs.requires_grad_(), targets, num_classes=num_classes, boxes_per_cell=b,
                     anchors=anchor_t, image_size=(s * stride, s * stride))
    torch.testing.assert_close(loss.double(), expected, rtol=1e-4, atol=1e-4)
    loss.backward()
    assert torch.isfinite(outputs.grad).all() and outputs.grad.abs().sum() > 0


def test_yolo_loss_with_no_objects_is_only_the_noobj_term():
    outputs = torch.randn(2, 2, 2, 2 * 5 + 2)
    empty = [{"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}] * 2
    loss = yolo_loss(outputs, empty, num_classes=2, image_size=(16, 16))
    conf = torch.sigmoid(outputs[..., [4, 9]].double())
    torch.testing.assert_close(loss.double(), 0.5 * (conf ** 2).sum() / 2)


@pytest.mark.kernel
@pytest.mark.parametrize("pre_nms_top_k", [4096, 10])
def test_yolo_postprocess_pads_and_agrees_with_torchvision_nms(pre_nms_top_k):
    pytest.importorskip("torchvision")
    model = YOLO(3, grid_size=3, width=4, stride=8).eval()
    plain = YOLO(3, grid_size=3, width=4, stride=8, fused=False).eval()
    plain.load_state_dict(model.state_dict())
    options = dict(score_threshold=0.05, iou_threshold=0.4, max_detections=7, pre_nms_top_k=pre_nms_top_k)
    with torch.no_grad():
        outputs = model(torch.rand(3, 3, 24, 24)) * 3
        fused = model.postprocess(outputs, **options)
        reference = plain.postprocess(outputs, **options)
    boxes, scores, labels, counts = fused
    assert boxes.shape == (3, 7, 4) and scores.shape == (3, 7) and labels.shape == (3, 7)
    torch.testing.assert_close(counts, reference[3])
    for i, count in enumerate(counts.tolist()):
        assert (labels[i, count:] == -1).all()
        torch.testing.assert_close(scores[i, :count], reference[1][i, :count])
        torch.testing.assert_close(boxes[i, :count], reference[0][i, :count])
        torch.testing.assert_close(labels[i, :count], reference[2][i, :count])


def test_yolo_inference_with_postprocess_is_one_compiled_graph():
    model = YOLOInference(YOLO(3, grid_size=2, width=4, stride=8).eval(), score_threshold=0.01,
                          max_detections=5)
    x = torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        expected = model(x)
        compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
        got = compiled(x)
        for a, b in zip(got, expected):
            torch.testing.assert_close(a, b)
        exported = torch.export.export(model, (x,))
        for a, b in zip(exported.module()(x), expected):
            torch.testing.assert_close(a, b)


def test_yolo_inference_path_scripts():
    model = YOLO(3, grid_size=2, width=4, stride=8, passthrough=True,
                 anchors=[(1.0, 1.0), (2.0, 1.0)]).eval()
    x = torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(torch.jit.script(model)(x), model(x))
        inference = YOLOInference(model, score_threshold=0.01, max_detections=4)
        for a, b in zip(torch.jit.script(inference)(x), inference(x)):
            torch.testing.assert_close(a, b)


@pytest.mark.gpu
@pytest.mark.parametrize("cls, kwargs, size", SEG_CASES)
def test_fused_models_on_cuda_match_plain_torch_in_fp32_and_bf16_channels_last(cls, kwargs, size):
    fused, plain = (m.cuda() for m in _pair(cls, kwargs))
    x = torch.rand(2, 3, size, size, device="cuda")
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.testing.assert_close(fused(x), plain(x), atol=1e-3, rtol=1e-3)
    fused_cl = fused.to(memory_format=torch.channels_last)
    x_cl = x.contiguous(memory_format=torch.channels_last)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        out_f, out_p = torch.compile(fused_cl, fullgraph=True)(x_cl), plain(x_cl)
    torch.testing.assert_close(out_f.float(), out_p.float(), atol=5e-2, rtol=5e-2)


@pytest.mark.gpu
def test_yolo_compiled_inference_on_cuda_matches_torchvision_postprocess():
    model = YOLO(5, grid_size=7, width=8, stride=32).cuda().eval()
    plain = YOLO(5, grid_size=7, width=8, stride=32, fused=False).cuda().eval()
    plain.load_state_dict(model.state_dict())
    x = torch.rand(4, 3, 224, 224, device="cuda")
    with torch.no_grad():
        got = torch.compile(YOLOInference(model, 0.05), fullgraph=True)(x)
        want = plain.postprocess(plain(x), 0.05)
    torch.testing.assert_close(got[3], want[3])
    torch.testing.assert_close(got[1], want[1], atol=1e-4, rtol=1e-4)


def _assert_detections_match_exact_per_class_nms(model, outputs, got, score_threshold, k):
    """YOLO.postprocess's padded outputs equal exact per-class torchvision NMS per image on the
    same candidates (test_nms.padded_reference_top_k: no coordinate-offset trick, whose float32
    rounding at large offsets can flip an IoU next to the threshold)."""
    from test_nms import padded_reference_top_k

    from tritonvision.models.yolo import detections
    from tritonvision.ops.nms import PRE_NMS_TOP_K

    anchors = model.anchors if model.use_anchors else None
    boxes, scores = detections(outputs, model.num_classes, model.boxes_per_cell, anchors,
                               outputs.shape[1] * model.stride, outputs.shape[2] * model.stride)
    want = padded_reference_top_k(boxes.cpu(), scores.cpu(), 0.5, score_threshold, k, PRE_NMS_TOP_K)
    boxes, scores, labels, counts = (t.cpu() for t in got)
    assert torch.equal(counts, want[4]) and torch.equal(labels, want[2])
    torch.testing.assert_close(scores, want[1], atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(boxes, want[0], atol=1e-4, rtol=1e-6)


@pytest.mark.gpu
@pytest.mark.parametrize("anchors", [None, [(1.0, 1.0), (2.5, 1.5), (0.7, 2.0)]], ids=["v1", "v2"])
def test_gpu_yolo_inference_is_sync_free_and_graph_capturable(anchors):
    from conftest import capture, no_host_sync

    # 13 x 13 cells x 2-3 boxes x 20 classes: 6,760-10,140 candidates, past pre_nms_top_k = 4096
    model = YOLO(20, grid_size=13, width=8, stride=32, anchors=anchors).cuda().eval()
    inference = YOLOInference(model, score_threshold=0.02, max_detections=50)
    images = torch.rand(4, 3, 416, 416, device="cuda")
    with torch.no_grad():
        inference(images)                                       # warm up (Triton compiles)
        torch.cuda.synchronize()
        with no_host_sync():
            got = inference(images)
        assert got[3].min() > 0
        _assert_detections_match_exact_per_class_nms(model, model(images), got, 0.02, 50)
        graph, static_out = capture(lambda: inference(images))
        images.copy_(torch.rand_like(images))
        graph.replay()
        torch.cuda.synchronize()
        _assert_detections_match_exact_per_class_nms(model, model(images), static_out, 0.02, 50)
