"""Helpers for tests, benchmarks and users without weights: random-weight caffemodels for any prototxt."""
import numpy as np



def random_weights(net, seed=0, std=None):
    """Replaces every blob of a CaffeNet with Gaussian noise scaled by 1/sqrt(fan-in) (or `std`), so
    activations keep a sensible magnitude through deep nets; returns the net."""
    import torch
    rng = np.random.default_rng(seed)
    with torch.no_grad():
        for layer in net.layers:
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

