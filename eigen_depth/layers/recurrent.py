"""Recurrent layers: RNN, LSTM and LSTMUnit, with BVLC Caffe's parameters and recurrences.

Input x is (T, N, ...) (T time steps of N independent streams; the axes after the second are flattened),
cont is (T, N): cont[t, n] = 0 starts a new sequence in stream n at step t (the previous state is dropped),
an optional static input (N, ...) is added to every step. With recurrent_param.expose_hidden the initial
states are further bottoms (h_0, and c_0 for LSTM; each (1, N, num_output)) and the final ones further
tops; otherwise the final state of one forward is the initial state of the next (zeros at first and after
the batch size changes), as Caffe keeps it. No gradient reaches cont, the exposed initial states or (from
the exposed final states) the recurrence, as in Caffe's unrolled nets.

RNN (H = num_output): h_t = tanh(W_hh (cont_t h_{t-1}) + W_xh x_t + b_h [+ W_xh_static x_static]),
o_t = tanh(W_ho h_t + b_o); the top is o over time. Blobs: W_xh (H, D), b_h (H), [W_xh_static (H, D_s)],
W_hh (H, H), W_ho (H, H), b_o (H).

LSTM: gate inputs a = W_hc (cont_t h_{t-1}) + W_xc x_t + b_c [+ W_xc_static x_static], in blocks i, f, o, g
of H; i, f, o = sigmoid, g = tanh; c_t = cont_t f c_{t-1} + i g, h_t = o tanh(c_t); the top is h over time.
Blobs: W_xc (4H, D), b_c (4H), [W_xc_static (4H, D_s)], W_hc (4H, H). recurrent_param.weight_filler fills
the weights, bias_filler the biases.

LSTMUnit: one step of that cell: bottoms c_{t-1} (1, N, D), gate inputs (1, N, 4D), cont (1, N); tops c_t
and h_t.
"""
import math

import torch

from .base import Layer, register


def _lstm_step(c_prev, gates, cont):
    """(c_t, h_t) of Caffe's LSTMUnit; gates (..., 4D) in blocks i, f, o, g; cont broadcast over D."""
    i, f, o, g = gates.chunk(4, dim=-1)
    i, f, o, g = torch.sigmoid(i), cont * torch.sigmoid(f), torch.sigmoid(o), torch.tanh(g)
    c = f * c_prev + i * g
    return c, o * torch.tanh(c)


class _Recurrent(Layer):
    BOTTOMS = (2, None)      # checked in setup: x, cont[, x_static][, initial states]
    TOPS = (1, None)         # the output[, final states]
    RECURRENT_STATES = 1     # h (RNN) or h and c (LSTM)
    GATES = 1                # rows of the input weight per output: 1 (RNN) or 4 (LSTM)

    def setup(self, bottom_shapes):
        rp = self.param.recurrent_param
        self.hidden = int(rp.num_output)
        if self.hidden < 1:
            raise self.error("recurrent_param.num_output must be at least 1")
        self.expose = bool(rp.expose_hidden)
        exposed = self.RECURRENT_STATES if self.expose else 0
        base = 2 + exposed
        if len(bottom_shapes) not in (base, base + 1):
            raise self.error(f"takes {base} or {base + 1} bottoms (x, cont[, x_static]"
                             f"{', initial states' if self.expose else ''}), got {len(bottom_shapes)}")
        self.has_static = len(bottom_shapes) == base + 1
        x, cont = bottom_shapes[:2]
        if len(x) < 2:
            raise self.shape_error(f"x must be (T, N, ...), got {x}")
        if tuple(cont) != tuple(x[:2]):
            raise self.shape_error(f"cont must be (T, N) = {tuple(x[:2])}, got {cont}")
        self.steps, streams = x[0], x[1]
        width = self.GATES * self.hidden
        self.add_blob((width, math.prod(x[2:])))             # W_x
        self.add_blob((width,))                               # b
        if self.has_static:
            static = bottom_shapes[2]
            if not static or static[0] != streams:
                raise self.shape_error(f"x_static must be (N, ...) with N = {streams}, got {static}")
            self.add_blob((width, math.prod(static[1:])))    # W_x_static
        self.add_blob((width, self.hidden))                   # W_hh / W_hc
        self.add_recurrent_blobs()
        state = (1, streams, self.hidden)
        for shape in bottom_shapes[len(bottom_shapes) - exposed:]:
            if tuple(shape) != state:
                raise self.shape_error(f"an initial state must be {state}, got {shape}")
        self._carried = None
        if self.num_tops(1 + exposed) != 1 + exposed:
            raise self.error(f"takes {1 + exposed} top(s) (the output{', final states' if self.expose else ''}), "
                             f"got {self.num_tops(1 + exposed)}")
        return [(self.steps, streams, self.hidden)] + [state] * exposed

    def add_recurrent_blobs(self):
        """Blobs after the recurrent weight (RNN's output layer)."""

    def fill(self, generator, **options):
        rp = self.param.recurrent_param
        for blob in self.blobs:
            self.fill_blob(blob, rp.weight_filler if blob.dim() == 2 else rp.bias_filler, generator, **options)

    def forward(self, x, cont, *rest):
        if x.shape[0] != self.steps:
            raise self.shape_error(f"x has {x.shape[0]} time steps; the layer was built for {self.steps}")
        exposed = self.RECURRENT_STATES if self.expose else 0
        static = rest[0] if self.has_static else None
        streams = x.shape[1]
        if self.expose:
            initial = [state.detach() for state in rest[len(rest) - exposed:]]
        elif self._carried is not None and self._carried[0].shape[1] == streams:
            initial = [state.to(x.dtype) for state in self._carried]
        else:
            initial = [x.new_zeros(1, streams, self.hidden) for _ in range(self.RECURRENT_STATES)]
        weight_x, bias, *more = self.blobs
        inputs = torch.nn.functional.linear(x.reshape(self.steps, streams, -1), weight_x, bias)
        if static is not None:
            weight_static, *more = more
            inputs = inputs + torch.nn.functional.linear(static.reshape(streams, -1), weight_static)[None]
        cont = cont.detach().to(x.dtype).reshape(self.steps, streams, 1)
        outputs, final = self.recur(inputs, cont, initial, more)
        if not self.expose:
            self._carried = [state.detach() for state in final]
            return (outputs,)
        return (outputs, *[state.detach() for state in final])


@register("RNN")
class RNN(_Recurrent):
    """Caffe's vanilla RNN (see the module docstring)."""

    def add_recurrent_blobs(self):
        self.add_blob((self.hidden, self.hidden))  # W_ho
        self.add_blob((self.hidden,))              # b_o

    def recur(self, inputs, cont, initial, blobs):
        weight_hh, weight_ho, bias_o = blobs
        h = initial[0][0]
        outputs = []
        for t in range(self.steps):
            h = torch.tanh(inputs[t] + torch.nn.functional.linear(cont[t] * h, weight_hh))
            outputs.append(torch.tanh(torch.nn.functional.linear(h, weight_ho, bias_o)))
        return torch.stack(outputs), [h[None]]


@register("LSTM")
class LSTM(_Recurrent):
    """Caffe's LSTM (see the module docstring)."""
    RECURRENT_STATES = 2
    GATES = 4

    def recur(self, inputs, cont, initial, blobs):
        (weight_hc,) = blobs
        h, c = initial[0][0], initial[1][0]
        outputs = []
        for t in range(self.steps):
            gates = inputs[t] + torch.nn.functional.linear(cont[t] * h, weight_hc)
            c, h = _lstm_step(c, gates, cont[t])
            outputs.append(h)
        return torch.stack(outputs), [h[None], c[None]]


@register("LSTMUnit")
class LSTMUnit(Layer):
    """One step of Caffe's LSTM cell (see the module docstring); cont gets no gradient."""
    BOTTOMS = 3
    TOPS = 2

    def setup(self, bottom_shapes):
        c_prev, gates, cont = bottom_shapes
        if len(c_prev) != 3 or c_prev[0] != 1:
            raise self.shape_error(f"c_prev must be (1, N, D), got {c_prev}")
        if tuple(gates) != (1, c_prev[1], 4 * c_prev[2]):
            raise self.shape_error(f"the gate inputs must be (1, N, 4D) = {(1, c_prev[1], 4 * c_prev[2])}, got {gates}")
        if tuple(cont) != (1, c_prev[1]):
            raise self.shape_error(f"cont must be (1, N) = {(1, c_prev[1])}, got {cont}")
        return [tuple(c_prev), tuple(c_prev)]

    def forward(self, c_prev, gates, cont):
        return _lstm_step(c_prev, gates, cont.detach().to(c_prev.dtype)[..., None])
