"""`caffe time` for CaffeNet: average forward and forward-backward time per layer and for the whole net.

Whole-net times are measured end to end. Per-layer times run each layer alone on the inputs it saw in
a full forward pass (backward with unit output gradients), so they add up to about the whole-net time.
"""
import time

import torch

from .net import CaffeNet


def _synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(function, iterations, device):
    function()  # warm-up: allocations, kernel selection
    _synchronize(device)
    start = time.perf_counter()
    for _ in range(iterations):
        function()
    _synchronize(device)
    return (time.perf_counter() - start) / iterations


def _backward_through(outputs, inputs):
    tensors = [o for o in outputs if o.requires_grad]
    if tensors:
        torch.autograd.backward(tensors, [torch.ones_like(o) for o in tensors])
    for tensor in inputs:
        tensor.grad = None


def time_net(net, inputs, iterations=10, backward=True):
    """{'layers': [(name, type, forward_s, backward_s or None)], 'forward': s, 'forward_backward': s}.

    inputs: {input blob: tensor} already on the net's device; backward needs a net whose parameters
    require gradients (lr_mult > 0) or takes gradients w.r.t. the inputs.
    """
    device = net.device
    with torch.no_grad():
        blobs = net.forward(inputs, keep_blobs=True)
    rows = []
    for layer, bottoms, tops in zip(net.layers, net.layer_bottoms, net.layer_tops):
        if layer.type_name == "Input" or not tops:
            continue
        args = [blobs[b].detach() for b in bottoms]
        with torch.no_grad():
            forward_s = _timed(lambda: layer(*args), iterations, device)
        backward_s = None
        differentiable = any(a.is_floating_point() for a in args) or any(p.requires_grad for p in layer.blobs)
        if backward and differentiable:
            grad_args = [a.clone().requires_grad_(a.is_floating_point()) for a in args]

            def step():
                _backward_through(layer(*grad_args), grad_args)
            backward_s = max(_timed(step, iterations, device) - forward_s, 0.0)
        rows.append((layer.name, layer.type_name, forward_s, backward_s))
    with torch.no_grad():
        forward_total = _timed(lambda: net(inputs), iterations, device)
    total = {"layers": rows, "forward": forward_total, "forward_backward": None}
    if backward:
        grad_inputs = {k: v.clone().requires_grad_(True) for k, v in inputs.items()}

        def full_step():
            outputs = net(grad_inputs)
            _backward_through([o for o in outputs.values() if o.dim() >= 0], grad_inputs.values())
            net.zero_grad(set_to_none=True)
        total["forward_backward"] = _timed(full_step, iterations, device)
    return total


def format_report(report, batch, iterations):
    lines = [f"{'layer':<24}{'type':<16}{'forward ms':>12}{'backward ms':>13}"]
    for name, kind, forward_s, backward_s in report["layers"]:
        back = f"{backward_s * 1e3:13.3f}" if backward_s is not None else f"{'-':>13}"
        lines.append(f"{name:<24}{kind:<16}{forward_s * 1e3:12.3f}{back}")
    lines.append(f"Average Forward pass: {report['forward'] * 1e3:.3f} ms "
                 f"({report['forward'] * 1e3 / batch:.3f} ms per image, batch {batch}, {iterations} iterations)")
    if report["forward_backward"] is not None:
        lines.append(f"Average Forward-Backward: {report['forward_backward'] * 1e3:.3f} ms")
    return "\n".join(lines)


def time_model(model, weights=None, iterations=10, batch=None, device="cpu", backward=True, phase="TEST"):
    """Builds the net of `model` (deploy prototxt) and times it on random inputs; returns the report text."""
    net = CaffeNet(model, phase)
    if weights:
        net.copy_from(weights)
    net = net.to(device)
    inputs = {}
    for name in net.input_names:
        shape = list(net.blob_shapes[name])
        if batch:
            shape[0] = batch
        inputs[name] = torch.randn(shape, generator=torch.Generator().manual_seed(0)).to(device)
    if backward:
        for parameter in net.parameters():
            parameter.requires_grad_(True)
        net.layer_needs_grad = [True] * len(net.layers)
    report = time_net(net, inputs, iterations, backward)
    return format_report(report, shape[0] if net.input_names else 1, iterations)
