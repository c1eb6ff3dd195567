"""musicnn as two ONNX graphs for onnxruntime, built from the Keras port's weights.

* ``timbral``: post-input-norm, time-padded log-mel ``x (B, L+6, 96)`` →
  timbral maps ``(B, L, 408)``: the (7 x 38|67) convolutions, ReLU, batch norm and
  max over frequency of ``L`` consecutive frames.
* ``rest``: ``mel (B, 187, 96)`` and the window's timbral maps ``(B, 187, 408)`` →
  ``tags``, ``embedding``, ``mean_pool``, ``max_pool``: the temporal branch, mid-end
  and back-end.

Splitting at the timbral maps lets a live stream compute each frame's maps once
(``frontend.TimbralFrontEnd``). Batch norms are folded into a multiply-add;
layouts are ONNX's channels-first. The layer names are the checkpoint's
(``musicnn.build_musicnn``).
"""

from __future__ import annotations

import numpy as np

from .musicnn import BN_EPSILON, N_FRAMES, N_MELS, TIMBRAL_DIM

OPSET = 18  # reductions take their axes as an input


def _bn(model, name: str) -> tuple[np.ndarray, np.ndarray]:
    gamma, beta, mean, var = model.get_layer(name).get_weights()
    scale = gamma / np.sqrt(var + BN_EPSILON)
    return scale.astype(np.float32), (beta - mean * scale).astype(np.float32)


class _Graph:
    """A small helper that names initializers and nodes as they are added."""

    def __init__(self):
        from onnx import helper, numpy_helper

        self.helper, self.numpy_helper = helper, numpy_helper
        self.nodes, self.inits, self._n = [], [], 0

    def const(self, value, name: str | None = None) -> str:
        self._n += 1
        name = name or f"c{self._n}"
        self.inits.append(self.numpy_helper.from_array(np.asarray(value), name))
        return name

    def op(self, kind: str, inputs: list[str], **attrs) -> str:
        self._n += 1
        out = f"{kind.lower()}{self._n}"
        self.nodes.append(self.helper.make_node(kind, inputs, [out], **attrs))
        return out

    def conv_relu_bn(self, x: str, kernel: np.ndarray, bias: np.ndarray, bn: tuple, pads: list[int], shape) -> str:
        """Conv (ONNX kernel layout) → ReLU → folded batch norm broadcast over ``shape``."""
        y = self.op("Conv", [x, self.const(kernel.astype(np.float32)), self.const(bias.astype(np.float32))], pads=pads)
        y = self.op("Relu", [y])
        y = self.op("Mul", [y, self.const(bn[0].reshape(shape))])
        return self.op("Add", [y, self.const(bn[1].reshape(shape))])

    def conv_relu_bn_max(self, x: str, kernel: np.ndarray, bias: np.ndarray, bn: tuple, pads: list[int]) -> str:
        """Conv → ReLU → batch norm → max over the last axis, reduced first: (B, C, T, F) → (B, C, T).

        ReLU and a positive scale keep the order of values, so the max can be taken
        on the raw convolution; a negative scale reverses it, so those filters take
        the min. The elementwise steps then run on F-times fewer values.
        """
        scale, shift = bn
        parts, order = [], []
        for reduce, channels in (("ReduceMax", np.flatnonzero(scale >= 0)), ("ReduceMin", np.flatnonzero(scale < 0))):
            if channels.size:
                y = self.op("Conv", [x, self.const(kernel[channels].astype(np.float32)),
                                     self.const(bias[channels].astype(np.float32))], pads=pads)
                parts.append(self.op(reduce, [y, self.const(np.array([3], np.int64))], keepdims=0))
                order.append(channels)
        y = self.op("Concat", parts, axis=1) if len(parts) > 1 else parts[0]
        order = np.concatenate(order)
        y = self.op("Relu", [y])
        y = self.op("Add", [self.op("Mul", [y, self.const(scale[order].reshape(1, -1, 1))]),
                            self.const(shift[order].reshape(1, -1, 1))])
        return self.op("Gather", [y, self.const(np.argsort(order).astype(np.int64))], axis=1)

    def model(self, name: str, inputs: list, outputs: list[tuple[str, str]]) -> bytes:
        from onnx import TensorProto

        h = self.helper
        for out_name, tensor in outputs:
            self.nodes.append(h.make_node("Identity", [tensor], [out_name]))
        graph = h.make_graph(
            self.nodes, name, [h.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs],
            [h.make_tensor_value_info(n, TensorProto.FLOAT, None) for n, _ in outputs], self.inits)
        model = h.make_model(graph, opset_imports=[h.make_opsetid("", OPSET)], producer_name="genre-monitor")
        return model.SerializeToString()


def timbral_graph(model) -> bytes:
    """ONNX ``timbral`` graph of a built Keras port ``model`` (weights loaded)."""
    g = _Graph()
    x = g.op("Unsqueeze", ["x", g.const(np.array([1], np.int64))])  # (B, 1, L+6, 96)
    maps = []
    for conv, norm in [("conv2d", "batch_normalization_1"), ("conv2d_1", "batch_normalization_2")]:
        kernel, bias = model.get_layer(conv).get_weights()  # (7, w, 1, 204)
        maps.append(g.conv_relu_bn_max(x, kernel.transpose(3, 2, 0, 1), bias, _bn(model, norm), [0, 0, 0, 0]))
    both = g.op("Concat", maps, axis=1)
    out = g.op("Transpose", [both], perm=[0, 2, 1])  # (B, L, 408)
    return g.model("musicnn_timbral", [("x", ["B", "L", N_MELS])], [("timbral", out)])


def rest_graph(model) -> bytes:
    """ONNX ``rest`` graph of a built Keras port ``model`` (weights loaded)."""
    g = _Graph()
    scale, shift = _bn(model, "batch_normalization")
    x = g.op("Add", [g.op("Mul", ["mel", g.const(scale.reshape(1, 1, 1))]), g.const(shift.reshape(1, 1, 1))])
    x = g.op("Unsqueeze", [x, g.const(np.array([1], np.int64))])  # (B, 1, 187, 96)
    front = [g.op("Transpose", ["timbral"], perm=[0, 2, 1])]  # (B, 408, 187)
    for conv, norm, length in [("conv2d_2", "batch_normalization_3", 128), ("conv2d_3", "batch_normalization_4", 64),
                               ("conv2d_4", "batch_normalization_5", 32)]:
        kernel, bias = model.get_layer(conv).get_weights()  # (length, 1, 1, 51)
        before = (length - 1) // 2  # TensorFlow's 'same' padding puts the extra zero after
        front.append(g.conv_relu_bn_max(x, kernel.transpose(3, 2, 0, 1), bias, _bn(model, norm),
                                        [before, 0, length - 1 - before, 0]))  # (B, 51, 187)
    frontend = g.op("Concat", front, axis=1)  # (B, 561, 187)

    def conv1d(h, conv, norm):
        kernel, bias = model.get_layer(conv).get_weights()  # (7, C, 64)
        return g.conv_relu_bn(h, kernel.transpose(2, 1, 0), bias, _bn(model, norm), [3, 3], (1, -1, 1))

    cnn1 = conv1d(frontend, "conv2d_5", "batch_normalization_6")
    cnn2 = g.op("Add", [conv1d(cnn1, "conv2d_6", "batch_normalization_7"), cnn1])
    cnn3 = g.op("Add", [conv1d(cnn2, "conv2d_7", "batch_normalization_8"), cnn2])
    midend = g.op("Concat", [frontend, cnn1, cnn2, cnn3], axis=1)  # (B, 753, 187)
    time_axis = g.const(np.array([2], np.int64))
    max_pool = g.op("ReduceMax", [midend, time_axis], keepdims=0)
    mean_pool = g.op("ReduceMean", [midend, time_axis], keepdims=0)
    # The original interleaves the pools: [max0, mean0, max1, mean1, ...].
    pooled = g.op("Concat", [g.op("Unsqueeze", [p, g.const(np.array([2], np.int64))]) for p in (max_pool, mean_pool)],
                  axis=2)
    h = g.op("Flatten", [pooled], axis=1)
    scale, shift = _bn(model, "batch_normalization_9")
    h = g.op("Add", [g.op("Mul", [h, g.const(scale)]), g.const(shift)])
    kernel, bias = model.get_layer("dense").get_weights()
    h = g.op("Relu", [g.op("Gemm", [h, g.const(kernel), g.const(bias)])])
    scale, shift = _bn(model, "batch_normalization_10")
    embedding = g.op("Add", [g.op("Mul", [h, g.const(scale)]), g.const(shift)])
    kernel, bias = model.get_layer("dense_1").get_weights()
    tags = g.op("Sigmoid", [g.op("Gemm", [embedding, g.const(kernel), g.const(bias)])])
    return g.model("musicnn_rest", [("mel", ["B", N_FRAMES, N_MELS]), ("timbral", ["B", N_FRAMES, TIMBRAL_DIM])],
                   [("embedding", embedding), ("max_pool", max_pool), ("mean_pool", mean_pool), ("tags", tags)])
