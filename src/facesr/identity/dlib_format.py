"""Read dlib's serialised DNN files (``dlib::serialize(net)``) into plain layer records, without dlib.

The format, from dlib's documentation and sources (serialize.h, dnn/core.h, dnn/layers.h, input.h):

- an integer is one control byte (bit 7: negative; low 4 bits: how many bytes follow) and then that
  many little-endian magnitude bytes; a float is two integers, mantissa then exponent (value =
  mantissa * 2**exponent; exponents 32000-32002 are +inf, -inf, NaN); a bool is the byte '1' or '0';
  a string is its length (an integer) and then its bytes;
- a tensor is ``2, n, k, nr, nc`` and then n*k*nr*nc little-endian float32; an alias tensor (a view
  into a layer's ``params``) is ``1, n, k, nr, nc`` with no data;
- a network is serialised as its C++ type is nested, from the loss down: ``add_loss_layer`` writes its
  version, its loss details, then its sub-network; ``add_layer`` writes its version, then its whole
  sub-network, then its own details, three bools and its cached tensors; tag and skip layers write a
  version and their sub-network. So the stream cannot be read without knowing the layer kinds in order,
  exactly as dlib itself needs the C++ type: ``read_network(data, kinds)`` takes them, top to bottom.

Layer details read here: ``loss_metric_``/``loss_metric_2``, ``fc_2``/``fc_3``, ``con_4``-``con_6``,
``affine_``/``affine_2``, ``relu_``/``relu_2``, ``add_prev_``, ``avg_pool_2``, ``max_pool_2`` and
``input_rgb_image``/``input_rgb_image_sized``. Anything else raises ``DlibFormatError`` naming the offset.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# Layer kinds a network description may use (besides "tag<N>" and "skip<N>").
PARAM_KINDS = ("fc", "con", "affine", "relu", "add_prev", "avg_pool", "max_pool")


class DlibFormatError(ValueError):
    """The bytes are not the dlib network the caller described."""


@dataclass
class Layer:
    """One layer: its kind (``con``, ``tag1`` ...), its scalar settings and its float32 arrays."""

    kind: str
    settings: dict = field(default_factory=dict)
    arrays: dict = field(default_factory=dict)


class _Stream:
    def __init__(self, data: bytes):
        self.data, self.pos = memoryview(data), 0

    def fail(self, what: str):
        raise DlibFormatError(f"at byte {self.pos}: {what}")

    def take(self, n: int) -> memoryview:
        if self.pos + n > len(self.data):
            self.fail(f"the data ends; {n} more bytes expected")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def int(self) -> int:
        control = self.take(1)[0]
        size = control & 0x0F
        if size == 0 or size > 8 or control & 0x70:
            self.fail(f"bad integer control byte {control:#04x}")
        value = int.from_bytes(self.take(size), "little")
        return -value if control & 0x80 else value

    def float(self) -> float:
        mantissa, exponent = self.int(), self.int()
        special = {32000: np.inf, 32001: -np.inf, 32002: np.nan}
        return float(special[exponent]) if exponent in special else float(np.ldexp(float(mantissa), exponent))

    def bool(self) -> bool:
        ch = bytes(self.take(1))
        if ch not in (b"0", b"1"):
            self.fail(f"bad bool byte {ch!r}")
        return ch == b"1"

    def string(self) -> str:
        return bytes(self.take(self.int())).decode("latin-1")

    def version(self, allowed: tuple) -> int:
        v = self.int()
        if v not in allowed:
            self.fail(f"layer version {v}, expected one of {allowed}")
        return v

    def tensor(self) -> np.ndarray:
        if self.int() != 2:
            self.fail("tensor version is not 2")
        shape = tuple(self.int() for _ in range(4))
        count = int(np.prod(shape))
        return np.frombuffer(self.take(4 * count), "<f4").astype(np.float32).reshape(shape)

    def alias(self) -> tuple:
        if self.int() != 1:
            self.fail("alias tensor version is not 1")
        return tuple(self.int() for _ in range(4))


def _details(s: _Stream, kind: str) -> Layer:
    """One layer's own details (the ``details`` member dlib's add_layer serialises)."""
    tag = s.string()
    layer = Layer(kind)
    if kind == "con" and tag in ("con_4", "con_5", "con_6"):
        params = s.tensor()
        st = layer.settings
        st["num_filters"], st["nr"], st["nc"] = s.int(), s.int(), s.int()
        st["stride"] = (s.int(), s.int())
        st["padding"] = (s.int(), s.int())
        filters, biases = s.alias(), s.alias()
        for _ in range(4):  # learning-rate and weight-decay multipliers
            s.float()
        use_bias = s.bool() if tag in ("con_5", "con_6") else True
        if tag == "con_6":
            st["fused_relu"] = s.bool()
        flat = params.reshape(-1)
        n = int(np.prod(filters))
        layer.arrays["weight"] = flat[:n].reshape(filters)
        if use_bias:
            layer.arrays["bias"] = flat[n:n + int(np.prod(biases))].copy()
    elif kind == "fc" and tag in ("fc_2", "fc_3"):
        outputs, inputs = s.int(), s.int()
        params = s.tensor()
        s.alias(), s.alias()  # the weights' and biases' aliases: both are in params
        bias_mode = s.int()
        for _ in range(4):
            s.float()
        use_bias = s.bool() if tag == "fc_3" else True
        flat = params.reshape(-1)
        layer.arrays["weight"] = flat[:inputs * outputs].reshape(inputs, outputs).T.copy()  # dlib: x @ W
        if bias_mode == 0 and use_bias:  # FC_HAS_BIAS
            layer.arrays["bias"] = flat[inputs * outputs:inputs * outputs + outputs].copy()
        layer.settings.update(inputs=inputs, outputs=outputs)
    elif kind == "affine" and tag in ("affine_", "affine_2"):
        params = s.tensor().reshape(-1)
        gamma, _ = s.alias(), s.alias()
        layer.settings["mode"] = s.int()
        if tag == "affine_2":
            layer.settings["disabled"] = s.bool()
        n = int(np.prod(gamma))
        layer.arrays["gamma"], layer.arrays["beta"] = params[:n].copy(), params[n:2 * n].copy()
    elif kind == "relu" and tag in ("relu_", "relu_2"):
        if tag == "relu_2":
            layer.settings["disabled"] = s.bool()
    elif kind.startswith("add_prev") and tag == "add_prev_":
        pass
    elif kind in ("avg_pool", "max_pool") and tag == f"{kind}_2":
        st = layer.settings
        st["nr"], st["nc"] = s.int(), s.int()
        st["stride"] = (s.int(), s.int())
        st["padding"] = (s.int(), s.int())
    else:
        s.fail(f"layer details {tag!r} where a {kind} layer was expected")
    return layer


def _input(s: _Stream) -> Layer:
    tag = s.string()
    if tag not in ("input_rgb_image", "input_rgb_image_sized"):
        s.fail(f"input layer {tag!r}, expected input_rgb_image[_sized]")
    layer = Layer("input", {"mean_rgb": (s.float(), s.float(), s.float())})
    if tag == "input_rgb_image_sized":
        layer.settings["size"] = (s.int(), s.int())
    return layer


def _loss(s: _Stream) -> Layer:
    tag = s.string()
    if tag == "loss_metric_":
        return Layer("loss_metric", {"margin": 0.1, "dist_thresh": 0.75})
    if tag == "loss_metric_2":
        return Layer("loss_metric", {"margin": s.float(), "dist_thresh": s.float()})
    s.fail(f"loss layer {tag!r}, expected loss_metric_[2]")


def _skip_add_layer_state(s: _Stream, version: int, over_input: bool) -> None:
    for _ in range(3):  # this_layer_setup_called, gradient_input_is_stale, get_output_and_gradient_input_disabled
        s.bool()
    s.tensor(), s.tensor()  # x_grad, cached_output
    if over_input:
        s.tensor()  # grad_final
        if version >= 3:
            s.int()  # sample expansion factor
    elif version == 2:
        s.tensor()  # params_grad


def read_network(data: bytes, kinds: list[str]) -> list[Layer]:
    """``kinds``: the layer kinds from the loss down, e.g. ``["loss_metric", "fc", ..., "con", "input"]``.

    Returns the layers in the same order (loss first, input last). The layer just above the input is
    the one whose add_layer holds the input layer.
    """
    if kinds[0] != "loss_metric" or kinds[-1] != "input" or len(kinds) < 3:
        raise ValueError("kinds must run from 'loss_metric' down to 'input'")
    s = _Stream(data)
    s.version((1,))
    loss = _loss(s)
    body = kinds[1:-1]
    versions = []
    for kind in body[:-1]:  # top-down: each add_layer's version comes before its sub-network
        versions.append(s.version((1,)) if kind[:3] in ("tag", "ski") else s.version((1, 2)))
    bottom_version = s.version((2, 3))
    inp = _input(s)
    layers = [_details(s, body[-1])]
    _skip_add_layer_state(s, bottom_version, over_input=True)
    for kind, version in zip(reversed(body[:-1]), reversed(versions)):  # details come back up
        if kind[:3] in ("tag", "ski"):
            layers.append(Layer(kind))
            continue
        layers.append(_details(s, kind))
        _skip_add_layer_state(s, version, over_input=False)
    if s.pos != len(s.data):
        s.fail(f"{len(s.data) - s.pos} bytes left after the network")
    return [loss] + layers[::-1] + [inp]
