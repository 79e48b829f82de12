"""Helpers for tests, benchmarks and users without weights: random-weight caffemodels for any prototxt."""
import numpy as np



def random_weights(net, seed=0, std=None):
    """Replaces every blob of a CaffeNet with Gaussian noise scaled by 1/sqrt(fan-in) (or `std`), so
    activations keep a sensible magnitude through deep nets; BatchNorm gets statistics a trained net could
    have (mean ~ N(0, 0.1), variance ~ U(0.5, 1.5), scale factor 1). Returns the net."""
    import torch
    rng = np.random.default_rng(seed)
    with torch.no_grad():
        for layer in net.layers:
            if layer.type_name == "BatchNorm":
                mean, variance, factor = layer.blobs
                mean.copy_(torch.from_numpy(rng.normal(0, 0.1, tuple(mean.shape)).astype(np.float32)))
                variance.copy_(torch.from_numpy(rng.uniform(0.5, 1.5, tuple(variance.shape)).astype(np.float32)))
                factor.fill_(1.0)
                continue
            for blob in layer.blobs:
                shape = tuple(blob.shape)
                fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else 1
                scale = std if std is not None else 1.0 / np.sqrt(max(fan_in, 1))
                values = rng.standard_normal(shape, dtype=np.float32) * np.float32(scale)
                blob.copy_(torch.from_numpy(values))
    return net


def write_random_caffemodel(prototxt, path, seed=0, std=None, phase="TEST"):
    """Builds the net of `prototxt`, gives it random weights and writes them to `path` as a caffemodel;
    returns the CaffeNet."""
    from .net import CaffeNet
    net = random_weights(CaffeNet(prototxt, phase), seed, std)
    net.save(path)
    return net

