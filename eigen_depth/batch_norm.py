"""Batch normalisation while training, folded away in every snapshot: how the CPU recipe trains the thesis's nets
from fillers faster while each snapshot it leaves is the thesis's own architecture.

While training, every trainable Convolution or InnerProduct layer with a bias whose top a ReLU rectifies in place
gets a BatchNorm and a Scale layer between the two (`insert`), the arrangement of Caffe's ResNets. Each output
channel is then normalised by its batch's statistics before the ReLU, whatever the scale of the layer's filler.

With the BatchNorm's stored statistics (mean m, variance v, its eps) and the Scale's factor g and bias b, the
three layers are, per output channel, one affine map of the layer's input, which is exactly what Caffe's TEST
phase computes. `fold` writes it into the layer:

    W' = W * g / sqrt(v + eps)        bias' = (bias - m) * g / sqrt(v + eps) + b

and drops the BatchNorm and Scale layers, so the folded weights load by name into the thesis's deploy prototxt.
"""
import numpy as np

from .caffe import array_to_blob, blob_to_array, read_caffemodel, schema, write_caffemodel
from .errors import CaffemodelError, EigenDepthError

NORMALISED_TYPES = ("Convolution", "InnerProduct")
BATCH_NORM_SUFFIX = "-bn"
SCALE_SUFFIX = "-bn-scale"
MOVING_AVERAGE_FRACTION = 0.9  # the statistics of about the last 10 batches: a short run's weights move fast


def targets(net_param):
    """Names of the layers `insert` normalises: trainable (a first lr_mult > 0) Convolution and InnerProduct
    layers with a bias whose single top a ReLU takes in place (bottom and top the same blob)."""
    rectified = {layer.bottom[0] for layer in net_param.layer
                 if layer.type == "ReLU" and len(layer.bottom) == 1 and list(layer.top) == list(layer.bottom)}
    found = []
    for layer in net_param.layer:
        if layer.type not in NORMALISED_TYPES or len(layer.top) != 1 or layer.top[0] not in rectified:
            continue
        if not layer.param or layer.param[0].lr_mult <= 0 or not _has_bias(layer):
            continue
        if layer.name not in found:  # a layer defined once per phase is one target
            found.append(layer.name)
    return found


def insert(net_param, names, fraction=MOVING_AVERAGE_FRACTION, learned=True):
    """Puts a BatchNorm and a Scale layer (with a bias) right after each layer named in `names`, in place on its
    top (net_param changed in place). learned: the Scale's factor and bias train at lr_mult 1 without weight
    decay (a training net); False writes no param specs (a deploy net). Returns net_param."""
    present = {layer.name for layer in net_param.layer}
    missing = [name for name in names if name not in present]
    if missing:
        raise EigenDepthError(f"{net_param.name or 'the net'}: has no layer {', '.join(missing)} to normalise")
    layers = list(net_param.layer)
    del net_param.layer[:]
    for layer in layers:
        net_param.layer.add().CopyFrom(layer)
        if layer.name not in names:
            continue
        top = layer.top[0]
        norm = net_param.layer.add(name=layer.name + BATCH_NORM_SUFFIX, type="BatchNorm", bottom=[top], top=[top])
        norm.include.extend(layer.include)
        norm.exclude.extend(layer.exclude)
        norm.batch_norm_param.moving_average_fraction = fraction
        scale = net_param.layer.add(name=layer.name + SCALE_SUFFIX, type="Scale", bottom=[top], top=[top])
        scale.include.extend(layer.include)
        scale.exclude.extend(layer.exclude)
        scale.scale_param.bias_term = True
        if learned:
            for _ in range(2):
                scale.param.add(lr_mult=1.0, decay_mult=0.0)
    return net_param


def normalised(net_param):
    """Names of the layers that `insert` normalised in a net: those followed by their BatchNorm and Scale."""
    names = {layer.name for layer in net_param.layer}
    return [layer.name for layer in net_param.layer
            if layer.type in NORMALISED_TYPES and layer.name + BATCH_NORM_SUFFIX in names
            and layer.name + SCALE_SUFFIX in names]


def fold(weights):
    """A NetParameter with blobs (a training net's weights, as CaffeNet.to_net_parameter gives them) without its
    inserted BatchNorm and Scale layers, their effect folded into the layers before them (see the module's
    text). The arithmetic is in float64; the blobs are written as float32."""
    layers = {layer.name: layer for layer in weights.layer}
    folded = schema.NetParameter(name=weights.name)
    dropped = set()
    for name in normalised(weights):
        dropped.update((name + BATCH_NORM_SUFFIX, name + SCALE_SUFFIX))
    for layer in weights.layer:
        if layer.name in dropped:
            continue
        out = folded.layer.add()
        out.CopyFrom(layer)
        if layer.name + BATCH_NORM_SUFFIX in dropped:
            out.ClearField("blobs")
            weight, bias = _folded_blobs(layer, layers[layer.name + BATCH_NORM_SUFFIX],
                                         layers[layer.name + SCALE_SUFFIX])
            out.blobs.extend([array_to_blob(weight), array_to_blob(bias)])
    return folded


def fold_caffemodel(source, target):
    """Writes the training snapshot `source` (a .caffemodel) folded (see `fold`) to `target`; returns the names
    of the layers folded. CaffemodelError when it has no layer followed by its BatchNorm and Scale."""
    weights = read_caffemodel(source)
    layers = normalised(weights)
    if not layers:
        raise CaffemodelError(f"{source}: has no layer followed by its BatchNorm '<layer>{BATCH_NORM_SUFFIX}' and "
                              f"Scale '<layer>{SCALE_SUFFIX}': nothing to fold")
    write_caffemodel(fold(weights), target)
    return layers


def _folded_blobs(layer, norm, scale):
    where = f"layer '{layer.name}'"
    if len(layer.blobs) != 2 or len(norm.blobs) != 3 or len(scale.blobs) != 2:
        raise EigenDepthError(f"{where}: folding needs its weight and bias, the BatchNorm's 3 blobs and the Scale's 2 "
                              f"(found {len(layer.blobs)}, {len(norm.blobs)}, {len(scale.blobs)})")
    weight, bias = (blob_to_array(blob, where) for blob in layer.blobs)
    bias_shape, weight, bias = bias.shape, weight.astype(np.float64), bias.astype(np.float64)
    mean_sum, var_sum, factor = (blob_to_array(blob, f"layer '{norm.name}'").astype(np.float64)
                                 for blob in norm.blobs)
    gamma, beta = (blob_to_array(blob, f"layer '{scale.name}'").astype(np.float64).ravel() for blob in scale.blobs)
    inverse = 0.0 if factor.ravel()[0] == 0 else 1.0 / factor.ravel()[0]  # Caffe's: a factor of 0 gives 0
    mean, var = mean_sum.ravel() * inverse, var_sum.ravel() * inverse
    multiplier = gamma / np.sqrt(var + norm.batch_norm_param.eps)
    transposed = layer.type == "InnerProduct" and layer.inner_product_param.transpose  # (inputs, outputs)
    channels = weight.shape[0] if layer.type == "Convolution" else weight.shape[-1 if transposed else -2]
    if not (len(multiplier) == len(mean) == len(beta) == channels == bias.size):
        raise EigenDepthError(f"{where}: its {channels} outputs and the normalisation's {len(multiplier)} channels "
                              f"disagree")
    if layer.type == "Convolution":
        weight = weight * multiplier.reshape((-1,) + (1,) * (weight.ndim - 1))
    elif transposed:
        weight = weight * multiplier
    else:  # an InnerProduct's weight is (outputs, inputs), or legacy 1 x 1 x outputs x inputs
        weight = weight * multiplier[:, None]
    bias = (bias.reshape(-1) - mean) * multiplier + beta
    return weight.astype(np.float32), bias.reshape(bias_shape).astype(np.float32)


def _has_bias(layer):
    field = layer.convolution_param if layer.type == "Convolution" else layer.inner_product_param
    return field.bias_term
