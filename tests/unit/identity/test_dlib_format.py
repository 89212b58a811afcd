"""dlib_format against a writer of dlib's documented encoding (serialize.h), and the port's forward pass
against plain PyTorch on a small network written that way."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from facesr.identity.dlib_format import DlibFormatError, _Stream, read_network
from facesr.identity.dlib_resnet import DlibResNet


# --- a writer of dlib's format, from its documentation ------------------------------------------------

def w_int(v: int) -> bytes:
    mag = abs(v).to_bytes(8, "little").rstrip(b"\0") or b"\0"
    return bytes([len(mag) | (0x80 if v < 0 else 0)]) + mag


def w_float(v: float) -> bytes:
    if v == 0:
        return w_int(0) + w_int(0)
    m, e = math.frexp(v)
    mantissa = int(m * (1 << 24))
    return w_int(mantissa) + w_int(e - 24)


def w_bool(v: bool) -> bytes:
    return b"1" if v else b"0"


def w_str(s: str) -> bytes:
    return w_int(len(s)) + s.encode()


def w_tensor(a: np.ndarray) -> bytes:
    shape = (list(a.shape) + [1, 1, 1, 1])[:4] if a.size else [0, 0, 0, 0]
    return w_int(2) + b"".join(w_int(x) for x in shape) + np.asarray(a, "<f4").tobytes()


def w_alias(shape) -> bytes:
    return w_int(1) + b"".join(w_int(x) for x in (list(shape) + [1, 1, 1])[:4])


def empty() -> bytes:
    return w_tensor(np.zeros((0,), np.float32))


def con_details(w: np.ndarray, b: np.ndarray, stride: int, pad: int) -> bytes:
    params = np.concatenate([w.ravel(), b.ravel()])
    return (w_str("con_4") + w_tensor(params.reshape(1, -1)) + w_int(w.shape[0]) + w_int(w.shape[2]) + w_int(w.shape[3])
            + w_int(stride) + w_int(stride) + w_int(pad) + w_int(pad) + w_alias(w.shape) + w_alias((1, w.shape[0], 1, 1))
            + b"".join(w_float(1.0) for _ in range(4)))


def affine_details(g: np.ndarray, b: np.ndarray) -> bytes:
    return (w_str("affine_") + w_tensor(np.concatenate([g, b]).reshape(1, -1)) + w_alias((1, g.size, 1, 1))
            + w_alias((1, g.size, 1, 1)) + w_int(0))


def fc_details(w: np.ndarray) -> bytes:  # w: (inputs, outputs), no bias
    return (w_str("fc_2") + w_int(w.shape[1]) + w_int(w.shape[0]) + w_tensor(w.reshape(1, -1)) + w_alias(w.shape)
            + w_alias((1, w.shape[1])) + w_int(1) + b"".join(w_float(1.0) for _ in range(4)))


def layer_state() -> bytes:
    return w_bool(True) + w_bool(False) + w_bool(False) + empty() + empty() + empty()


# --- primitives ----------------------------------------------------------------------------------------

def test_integers_round_trip_over_random_values():
    rng = np.random.default_rng(0)
    values = [0, 1, -1, 255, 256, -65536, 2 ** 62, -(2 ** 62)] + [int(v) for v in rng.integers(-2 ** 40, 2 ** 40, 200)]
    s = _Stream(b"".join(w_int(v) for v in values))
    assert [s.int() for _ in values] == values


def test_floats_decode_to_the_written_value():
    rng = np.random.default_rng(1)
    values = [0.0, 1.0, -0.5, 122.782, 1e-30] + list(rng.normal(0, 10, 100).astype(np.float32).astype(float))
    s = _Stream(b"".join(w_float(v) for v in values))
    got = [s.float() for _ in values]
    np.testing.assert_allclose(got, np.float32(values), rtol=1e-7)


def test_special_float_exponents():
    s = _Stream(w_int(0) + w_int(32000) + w_int(0) + w_int(32001) + w_int(0) + w_int(32002))
    assert s.float() == np.inf and s.float() == -np.inf and np.isnan(s.float())


def test_strings_bools_and_tensors():
    a = np.arange(6, dtype=np.float32).reshape(1, 2, 3, 1)
    s = _Stream(w_str("con_4") + w_bool(True) + w_bool(False) + w_tensor(a) + w_alias((4, 3, 2, 1)))
    assert s.string() == "con_4" and s.bool() and not s.bool()
    np.testing.assert_array_equal(s.tensor(), a)
    assert s.alias() == (4, 3, 2, 1)


@pytest.mark.parametrize("data, message", [(b"\x00", "control byte"), (b"\x03\x01", "data ends"), (b"x", "control byte")])
def test_bad_bytes_name_the_offset(data, message):
    with pytest.raises(DlibFormatError, match=rf"at byte \d+: .*{message}"):
        _Stream(data).int()


# --- a small network, nested as dlib writes it ---------------------------------------------------------

KINDS = ["loss_metric", "fc", "avg_pool", "relu", "add_prev1", "affine", "con", "tag1", "max_pool", "con", "input"]


def tiny_network(rng):
    """loss_metric<fc_no_bias<avg_pool_everything<relu<add_prev1<affine<con<tag1<max_pool<con<input>>>>>>>>>>."""
    c1w, c1b = rng.normal(0, 0.2, (4, 3, 3, 3)).astype(np.float32), rng.normal(0, 0.1, 4).astype(np.float32)
    c2w, c2b = rng.normal(0, 0.2, (6, 4, 3, 3)).astype(np.float32), rng.normal(0, 0.1, 6).astype(np.float32)
    g, b = rng.normal(1, 0.1, 6).astype(np.float32), rng.normal(0, 0.1, 6).astype(np.float32)
    fw = rng.normal(0, 0.3, (6, 5)).astype(np.float32)
    pool = lambda name, n, stride, pad: (w_str(name) + w_int(n) + w_int(n) + w_int(stride) + w_int(stride)  # noqa: E731
                                         + w_int(pad) + w_int(pad))
    data = (w_int(1) + w_str("loss_metric_2") + w_float(0.04) + w_float(0.6)
            + w_int(2) + w_int(2) + w_int(2) + w_int(2) + w_int(2) + w_int(2) + w_int(1) + w_int(2)  # fc .. max_pool
            + w_int(2) + w_str("input_rgb_image_sized") + w_float(122.782) + w_float(117.001) + w_float(104.298)
            + w_int(20) + w_int(20)
            + con_details(c1w, c1b, 2, 0) + layer_state()  # bottom con: x_grad, cached_output, grad_final (v2)
            + pool("max_pool_2", 2, 2, 0) + layer_state()
            + con_details(c2w, c2b, 1, 1) + layer_state()
            + affine_details(g, b) + layer_state()
            + w_str("add_prev_") + layer_state()
            + w_str("relu_") + layer_state()
            + pool("avg_pool_2", 0, 1, 0) + layer_state()
            + fc_details(fw) + layer_state())
    return data, (c1w, c1b, c2w, c2b, g, b, fw)


def test_tiny_network_reads_and_runs_like_plain_pytorch():
    rng = np.random.default_rng(2)
    data, (c1w, c1b, c2w, c2b, g, b, fw) = tiny_network(rng)
    layers = read_network(data, KINDS)
    assert [layer.kind for layer in layers] == KINDS
    assert layers[0].settings["margin"] == pytest.approx(0.04, rel=1e-6)
    np.testing.assert_array_equal(layers[-2].arrays["weight"], c1w)
    net = DlibResNet(layers)
    x = torch.rand(2, 3, 20, 20)
    t = lambda a: torch.from_numpy(a)  # noqa: E731
    h = (x * 255 - torch.tensor([122.782, 117.001, 104.298]).view(1, 3, 1, 1)) / 256
    h = F.max_pool2d(F.conv2d(h, t(c1w), t(c1b), stride=2), 2, 2)  # 20 -> 9 -> 4
    y = F.conv2d(h, t(c2w), t(c2b), padding=1) * t(g).view(1, -1, 1, 1) + t(b).view(1, -1, 1, 1)
    y = F.relu(y + F.pad(h, (0, 0, 0, 0, 0, 2)))  # 6 channels + 4 channels, zero-padded as dlib adds
    want = y.mean(dim=(2, 3)) @ t(fw)
    torch.testing.assert_close(net(x), want, rtol=1e-5, atol=1e-5)


def test_wrong_description_or_trailing_bytes_are_format_errors():
    data, _ = tiny_network(np.random.default_rng(3))
    with pytest.raises(DlibFormatError, match="layer details 'con_4' where a affine"):
        read_network(data, KINDS[:5] + ["con", "affine"] + KINDS[7:])
    with pytest.raises(DlibFormatError, match="bytes left"):
        read_network(data + b"\x00", KINDS)
    with pytest.raises(DlibFormatError, match="data ends"):
        read_network(data[:-40], KINDS)
