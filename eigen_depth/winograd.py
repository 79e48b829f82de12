"""Winograd's minimal filtering for 3x3 and 5x5 convolutions of stride 1 on the CPU, where no gradient is needed.

A convolution of stride 1 computes each output from overlapping windows of its input, so neighbouring outputs
share most of their multiplications' inputs. Winograd's algorithm F(m, r) (Lavin and Gray, "Fast Algorithms for
Convolutional Neural Networks", 2016) computes an m x m block of outputs of an r x r filter from an a x a tile of
the input (a = m + r - 1) with a * a multiplications per input and output channel pair instead of m * m * r * r:

    Y = A^T [ (G g G^T) (.) (B^T d B) ] A

where g is the filter, d the tile, (.) the element-wise product, summed over the input channels. Summed over the
channels, the element-wise products of all the tiles are a * a matrix products (tiles x in) @ (in x out), which
is where the time goes. F(4, 3) takes 36 multiplications for the 144 of a direct 3x3 convolution (4x fewer),
F(4, 5) 64 for 400 (6.25x fewer); the transforms of the input and of the output blocks are matrix products with
a * a inner dimension, small beside them.

The matrices come from the Toom-Cook construction: with the a - 1 finite points p_j and the point at infinity,
V is the a x a Vandermonde matrix of the points (row j: 1, p_j, p_j^2, ...; the last row picks the leading
coefficient), G and A its first r and m columns (the same rows for the point at infinity), and B^T the
transposed inverse of V. Each row of B^T is scaled to a largest entry of 1 and the matching row of G by the
inverse, so that the input's transform, done in float32, has small coefficients; the filters are transformed
once, in float64.

The price is rounding. The transformed values are sums with cancellations that the output transform undoes, so
in float32 an output carries more rounding than a direct convolution's: on random inputs about 2e-6 of the
largest output (3x3) and 8e-6 (5x5) in the worst element of a layer, against 3e-7 for the direct one. The points
(0, 1, -1, 2, -1/2 for F(4, 3); 0, 1, -1, 2, -2, 1/2, -1/2 for F(4, 5)) are those with the least of it among
the sets tried. `eigen_depth.layout` runs a convolution this way only where it was timed faster and where the
options allow it (`--layout` on the commands)."""
import numpy as np
import torch
import torch.nn.functional as F

# kernel size -> (outputs per tile side m, the finite interpolation points)
TILES = {3: (4, (0.0, 1.0, -1.0, 2.0, -0.5)),
         5: (4, (0.0, 1.0, -1.0, 2.0, -2.0, 0.5, -0.5))}

# the transformed input of a batch is made this many values at most at a time (a few images' worth), so that
# the transforms and products work from the cache instead of memory
CHUNK_VALUES = 1 << 21
# and the filters are transformed this many float64 values at most at a time
FILTER_CHUNK_VALUES = 1 << 20


def transforms(m, r, points):
    """(A^T (m x a), G (a x r), B^T (a x a)) of F(m, r) for the a - 1 = m + r - 2 finite points, float64, with
    A^T [(G g) * (B^T d)] = the correlation of d (length a) with g (length r) at its m positions."""
    a = m + r - 1
    if len(points) != a - 1 or len(set(points)) != a - 1:
        raise ValueError(f"F({m}, {r}) needs {a - 1} distinct finite points, got {points}")
    vandermonde = np.zeros((a, a))
    for row, point in enumerate(points):
        vandermonde[row] = [point ** power for power in range(a)]
    vandermonde[a - 1, a - 1] = 1.0          # the point at infinity: the leading coefficient
    g_matrix = _truncated(vandermonde, r)
    a_matrix = _truncated(vandermonde, m)
    b_transposed = np.linalg.inv(vandermonde).T
    scale = np.abs(b_transposed).max(axis=1, keepdims=True)
    return a_matrix.T, g_matrix * scale, b_transposed / scale


def _truncated(vandermonde, columns):
    """The Vandermonde rows evaluated for polynomials of `columns` coefficients (infinity: the last one)."""
    out = vandermonde[:, :columns].copy()
    out[-1] = 0.0
    out[-1, columns - 1] = 1.0
    return out


def eligible(kernel, stride, dilation, pad):
    """Whether a convolution of this geometry can run here: a square 3x3 or 5x5 kernel, stride 1, no dilation,
    and a padding of less than the kernel on each side."""
    return (kernel[0] == kernel[1] and kernel[0] in TILES and tuple(stride) == (1, 1)
            and tuple(dilation) == (1, 1) and all(0 <= p < kernel[0] for p in pad))


def applies(x, weight):
    """Whether this call can run through the transforms: float32 on the CPU, no gradient wanted, not traced."""
    return (x.device.type == "cpu" and x.dtype == torch.float32 and weight.dtype == torch.float32
            and x.dim() == 4 and not torch.jit.is_tracing()
            and not (torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad)))


class Filters:
    """A convolution's filters transformed for F(m, r): U (a * a * groups, in / groups, out / groups), with the
    input and output transforms as Kronecker products (a * a x a * a and m * m x a * a). Built from float64."""

    def __init__(self, weight, groups):
        out_channels, in_per_group, r, _ = weight.shape
        self.m, points = TILES[r]
        self.r, self.a, self.groups = r, self.m + r - 1, groups
        a_t, g, b_t = transforms(self.m, r, points)
        a, out_per_group = self.a, out_channels // groups
        g = torch.from_numpy(g)
        weight = weight.detach().to("cpu")
        # (i, j, group, in, out / group), filled a few output channels at a time so that the float64
        # intermediates stay small beside the weights
        self.u = torch.empty((a, a, groups, in_per_group, out_per_group), dtype=torch.float32)
        step = max(1, FILTER_CHUNK_VALUES // (in_per_group * a * a))
        for group in range(groups):
            for start in range(0, out_per_group, step):
                stop = min(start + step, out_per_group)
                first = group * out_per_group
                w = weight[first + start:first + stop].to(torch.float64).reshape(-1, r)
                # G w G^T as two matrix products: (out, in, p, j) = w G^T, then (out, in, j, i)
                u = (w @ g.T).view(stop - start, in_per_group, r, a).transpose(2, 3).reshape(-1, r) @ g.T
                self.u[:, :, group, :, start:stop] = u.view(stop - start, in_per_group, a, a).permute(3, 2, 1, 0)
        self.u = self.u.view(a * a * groups, in_per_group, out_per_group)
        self.input_transform = torch.from_numpy(np.kron(b_t, b_t).astype(np.float32))
        self.output_transform = torch.from_numpy(np.kron(a_t, a_t).astype(np.float32))
        self.out_channels = out_channels


def conv2d(x, filters, bias, pad):
    """The convolution of x (N, C, H, W) with the transformed filters (Filters), padded by pad = (ph, pw), plus
    bias (or None): the same as F.conv2d with stride 1, up to float rounding. Returns an NCHW tensor."""
    n, channels, height, width = x.shape
    m, a, r = filters.m, filters.a, filters.r
    out_h, out_w = height + 2 * pad[0] - r + 1, width + 2 * pad[1] - r + 1
    tiles_h, tiles_w = -(-out_h // m), -(-out_w // m)
    # pad to whole tiles: (tiles - 1) * m + a cells (rows beyond the input are zeros, their outputs dropped)
    padding = (pad[1], (tiles_w - 1) * m + a - width - pad[1], pad[0], (tiles_h - 1) * m + a - height - pad[0])
    out = torch.empty((n, filters.out_channels, out_h, out_w), dtype=x.dtype)
    per_image = a * a * tiles_h * tiles_w * max(channels, filters.out_channels)
    step = max(1, CHUNK_VALUES // per_image)
    bias = None if bias is None else bias.view(1, -1, 1, 1)
    for start in range(0, n, step):
        part = F.pad(x[start:start + step], padding)
        _convolve_tiles(part, filters, bias, tiles_h, tiles_w, out[start:start + step])
    return out


def _convolve_tiles(padded, filters, bias, tiles_h, tiles_w, out):
    """out[...] = the convolution of the padded images, tile by tile, plus bias (or None), in one pass."""
    n, channels = padded.shape[:2]
    m, a, groups = filters.m, filters.a, filters.groups
    tiles = n * tiles_h * tiles_w
    # d[(i, j), group, image, tile row, tile column, channel]: the a x a tiles, m apart, gathered in one copy
    windows = padded.unfold(2, a, m).unfold(3, a, m)              # n, C, th, tw, a, a (a view)
    windows = windows.reshape(n, groups, channels // groups, tiles_h, tiles_w, a, a)
    d = windows.permute(5, 6, 1, 0, 3, 4, 2).reshape(a * a, -1)
    v = torch.mm(filters.input_transform, d).view(a * a * groups, tiles, channels // groups)
    products = torch.bmm(v, filters.u)                             # (a*a*groups, tiles, out / groups)
    y = torch.mm(filters.output_transform, products.view(a * a, -1))
    out_per_group = filters.out_channels // groups
    y = y.view(m, m, groups, n, tiles_h, tiles_w, out_per_group).permute(3, 2, 6, 4, 0, 5, 1)
    y = y.reshape(n, filters.out_channels, tiles_h * m, tiles_w * m)
    y = y[:, :, :out.shape[2], :out.shape[3]]
    if bias is None:
        out.copy_(y)
    else:
        torch.add(y, bias, out=out)
