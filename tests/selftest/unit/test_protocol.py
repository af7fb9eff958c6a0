"""The wire format (grader/execution/protocol.py): decode inverts encode, hostile frames
raise only :class:`ProtocolError`, and every cap is enforced."""

import io
import json
import math
import struct
import time

import hypothesis.extra.numpy as hnp
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from grader.execution import protocol
from grader.execution.protocol import DTYPES, ProtocolError, decode, encode, pack, recv

# ---- helpers -------------------------------------------------------------------------------


class FakeSocket:
    """The reading end of a connection that holds ``data`` (``recv`` hands out at most
    ``chunk`` bytes a time, like a slow peer); EOF after the data."""

    def __init__(self, data, chunk=7):
        self.stream, self.chunk = io.BytesIO(data), chunk

    def recv(self, n):
        return self.stream.read(min(n, self.chunk))

    def settimeout(self, seconds):
        pass


def raw_bytes(t):
    """The bytes of tensor ``t`` in memory order (every bit, NaN payloads and -0.0 included)."""
    flat = t.detach().contiguous().reshape(-1)
    return bytes(flat.view(torch.uint8).numpy().tobytes()) if flat.numel() else b""


def same(a, b):
    """Equality of decoded values: same types all the way down, NaN equals NaN, -0.0 is not
    0.0, tensors equal bit for bit with the same dtype, shape and device."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))
    if isinstance(a, torch.Tensor):
        if (a.dtype, a.shape, a.device) != (b.dtype, b.shape, b.device):
            return False
        return a.device.type == "meta" or raw_bytes(a) == raw_bytes(b)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    return a == b


def through_frame(value):
    """``value`` encoded, packed into a frame, read back by :func:`recv` and decoded."""
    header, buffers = encode(value)
    frame = pack({"value": header}, buffers)
    got, got_buffers = recv(FakeSocket(frame))
    return decode(got["value"], got_buffers)


def nested_list(depth, leaf=0):
    """``depth`` lists around ``leaf``: the leaf sits at nesting depth ``depth``."""
    value = leaf
    for _ in range(depth):
        value = [value]
    return value


# ---- strategies ----------------------------------------------------------------------------

scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8)
dtypes = st.sampled_from(sorted(DTYPES.values(), key=str))
devices = st.sampled_from(["cpu", "meta", "cuda", "cuda:1"]).map(torch.device)


def containers(children):
    keys = st.text(max_size=4) | st.integers()
    return (
        st.lists(children, max_size=4)
        | st.lists(children, max_size=4).map(tuple)
        | st.dictionaries(keys, children, max_size=4)
    )


plain_values = st.recursive(scalars | dtypes | devices, containers, max_leaves=16)


@st.composite
def tensors(draw, dtype):
    """A CPU tensor of ``dtype`` and any small shape (no dimension, sides of 0 and 1 included)
    holding arbitrary bits (a bool holds 0 or 1)."""
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=4))
    n = math.prod(shape) * torch.empty((), dtype=dtype).element_size()
    if dtype == torch.bool:
        data = bytes(draw(st.lists(st.integers(0, 1), min_size=n, max_size=n)))
    else:
        data = draw(st.binary(min_size=n, max_size=n))
    if n == 0:
        return torch.empty(shape, dtype=dtype)
    return torch.frombuffer(bytearray(data), dtype=torch.uint8).view(dtype).reshape(shape).clone()


# ---- decode inverts encode -----------------------------------------------------------------


@settings(max_examples=60)
@given(plain_values)
def test_decode_inverts_encode_on_plain_values(value):
    """Nested None, bools, ints of any size, floats (NaN, inf, -0.0), strings, lists, tuples,
    dicts with str or int keys, dtypes and devices come back equal and of the same types."""
    header, buffers = encode(value)
    assert buffers == []
    assert same(decode(header, buffers), value)


@settings(max_examples=40)
@given(plain_values)
def test_a_frame_carries_plain_values_intact(value):
    """The same values survive the whole way: JSON header, frame, :func:`recv`, decode."""
    assert same(through_frame(value), value)


@pytest.mark.parametrize("dtype", sorted(DTYPES.values(), key=str), ids=str)
@settings(max_examples=10)
@given(data=st.data())
def test_decode_inverts_encode_on_tensors_of_every_dtype_and_shape(dtype, data):
    """A tensor of every whitelisted dtype and shape (no dimension, sides of 0 and 1) comes back
    bit for bit (NaN payloads, -0.0): same dtype, shape and bytes, a plain ``torch.Tensor``."""
    t = data.draw(tensors(dtype))
    got = through_frame(t)
    assert type(got) is torch.Tensor
    assert same(got, t)


def test_every_whitelisted_dtype_is_the_torch_dtype_of_its_name():
    """``DTYPES`` maps each name that crosses the wire to the dtype of that name, and holds
    the twelve dtypes of the grader's exercises (no quantized or complex32 types)."""
    assert {name: getattr(torch, name) for name in DTYPES} == DTYPES
    assert len(DTYPES) == 12


def test_tensors_inside_structures_keep_their_places():
    """Tensors nested in tuples, lists and dicts come back in place, each with its own buffer."""
    a, b = torch.arange(6.0).reshape(2, 3), torch.tensor([True, False])
    value = {"pair": (a, [b, None]), 3: a.double()}
    header, buffers = encode(value)
    assert len(buffers) == 3
    assert same(decode(header, buffers), value)


@settings(max_examples=30)
@given(st.lists(st.one_of(plain_values, tensors(torch.float64), tensors(torch.int8)), min_size=1, max_size=4))
def test_values_encoded_into_one_frame_share_its_buffers(values):
    """Values encoded in turn into one buffer list (the parts of a request) each decode to
    themselves from the shared buffers, and a frame of them is the one that encoding the list
    of them whole would make."""
    buffers: list[bytes] = []
    parts = [protocol.encode_into(v, buffers) for v in values]
    assert all(same(decode(part, buffers), v) for part, v in zip(parts, values, strict=True))
    whole, whole_buffers = encode(list(values))
    assert parts == whole and buffers == whole_buffers


def test_encode_sends_a_plain_contiguous_copy():
    """A transposed view, a tensor that requires grad and a ``Parameter`` arrive as plain
    detached tensors holding the values of the view."""
    base = torch.arange(12.0).reshape(3, 4)
    for value in (base.T, base.clone().requires_grad_(True), torch.nn.Parameter(base.clone())):
        got = decode(*encode(value))
        assert type(got) is torch.Tensor and not got.requires_grad
        assert torch.equal(got, value.detach())


def test_meta_tensors_carry_no_buffer():
    """A meta tensor sends its dtype and shape only, and comes back a meta tensor."""
    header, buffers = encode(torch.empty(3, 4, dtype=torch.float16, device="meta"))
    assert buffers == [] and header["__tensor__"] is None
    got = decode(header, buffers)
    assert got.device.type == "meta" and got.shape == (3, 4) and got.dtype == torch.float16


def test_a_frame_is_a_length_then_json_then_the_buffers():
    """``pack`` lays out ``>I`` header length, the compact JSON header listing the buffer
    lengths, then the buffers in order."""
    frame = pack({"op": "call"}, [b"ab", b"", b"xyz"])
    header = b'{"op":"call","__buffers__":[2,0,3]}'
    assert frame == struct.pack(">I", len(header)) + header + b"abxyz"
    assert recv(FakeSocket(frame)) == ({"op": "call"}, [b"ab", b"", b"xyz"])


# ---- what encode refuses -------------------------------------------------------------------


class MyInt(int):
    pass


class MyTensor(torch.Tensor):
    pass


@pytest.mark.parametrize(
    "value",
    [
        {1, 2},
        b"bytes",
        MyInt(3),
        torch.zeros(2).as_subclass(MyTensor),
        object(),
        [1, [2, (3, frozenset())]],
        {"key": lambda: 0},
    ],
    ids=["set", "bytes", "int subclass", "tensor subclass", "object", "nested", "function"],
)
def test_encode_refuses_what_is_not_plain_data(value):
    """Anything but plain data and plain tensors is refused with :class:`ProtocolError`,
    naming its type, wherever it is nested."""
    with pytest.raises(ProtocolError, match="cannot send a "):
        encode(value)


class _EqualsEverything(type):
    def __eq__(cls, other):
        return True

    __hash__ = type.__hash__


class Impostor(metaclass=_EqualsEverything):
    """A class that claims to equal every class, ``int`` included."""


def test_encode_refuses_a_class_that_claims_to_equal_int():
    """A type compared by identity cannot pass for ``int``: encode refuses it."""
    with pytest.raises(ProtocolError):
        encode(Impostor())


# ---- hostile and malformed input -----------------------------------------------------------

TAGS = ["__tuple__", "__dict__", "__float__", "__dtype__", "__device__", "__tensor__", "dtype", "shape", "device"]
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-3, 3)
    | st.integers()
    | st.floats()
    | st.sampled_from(["nan", "inf", "-inf", "1e999", "cpu", "meta", "cuda:1", "cuda:x", "float32", "bool", "int"])
    | st.sampled_from(["complex32", "qint8", "torch.float32", "", "__tensor__"])
    | st.text(max_size=4)
)


def json_objects(children):
    return (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(TAGS) | st.text(max_size=3), children, max_size=4)
        | st.fixed_dictionaries(
            {
                "__tensor__": st.integers(-1, 3) | children,
                "dtype": st.sampled_from(sorted(DTYPES)) | children,
                "shape": st.lists(st.integers(-1, 3) | st.sampled_from([2**31, 2**63, 2**70]), max_size=17) | children,
            },
            optional={"device": st.sampled_from(["cpu", "meta", "gpu", "cuda"]) | children},
        )
    )


hostile = st.recursive(json_scalars, json_objects, max_leaves=20)
buffer_lists = st.lists(st.binary(max_size=16), max_size=4)


@st.composite
def near_tensors(draw):
    """``(obj, buffers)``: a tensor header and buffers that are valid but for none, one or
    two fields, so that decoding gets past the first checks (buffers of the right length)."""
    dtype = draw(st.sampled_from(sorted(DTYPES)))
    shape = draw(st.lists(st.integers(0, 3), max_size=3))
    size = math.prod(shape) * torch.empty((), dtype=DTYPES[dtype]).element_size()
    obj = {"__tensor__": 0, "dtype": dtype, "shape": shape, "device": draw(st.sampled_from(["cpu", "meta", "cuda"]))}
    buffers = [b"\x01" * size]
    wrong = {
        "__tensor__": st.sampled_from([1, -1, None, "0", 0.0]),
        "dtype": st.sampled_from(["complex32", "qint8", None, 3]),
        "shape": st.sampled_from([[*shape, -1], [2**63, 0], [0, 2**70], "1", [1.0], None]),
        "device": st.sampled_from(["mps", "cuda:999", "CPU", 0, None]),
        "buffers": buffer_lists,
    }
    for field in draw(st.lists(st.sampled_from(sorted(wrong)), max_size=2, unique=True)):
        if field == "buffers":
            buffers = draw(wrong[field])
        elif draw(st.booleans()):
            obj[field] = draw(wrong[field])
        else:
            del obj[field]
    return draw(st.sampled_from([obj, [obj], {"__tuple__": [obj, 1]}, {"__dict__": [["k", obj]]}])), buffers


frames = st.tuples(hostile, buffer_lists) | near_tensors()


def no_cuda(name):
    """The trusted side's rule on a machine without a GPU: cpu and meta only."""
    return not name.startswith("cuda")


@settings(max_examples=100)
@given(frames)
def test_decode_of_hostile_input_raises_only_protocol_error(frame):
    """Whatever JSON value and buffers a peer sends (tags, dtypes, shapes, indices and
    devices mixed at random), decoding returns plain data or raises :class:`ProtocolError`;
    never ``TypeError``, ``KeyError``, ``IndexError`` or ``RecursionError``."""
    obj, buffers = frame
    try:
        decode(obj, buffers, no_cuda)
    except ProtocolError:
        pass


@pytest.mark.parametrize(
    ("obj", "buffers", "match"),
    [
        ({}, [], "unexpected JSON value"),
        ({"other": 1}, [], "unknown tagged value"),
        ({"__tuple__": {"a": 1}}, [], "bad tuple"),
        ({"__dict__": 3}, [], "bad dict"),
        ({"__dict__": [[1]]}, [], "bad dict entry"),
        ({"__dict__": [[{"__tuple__": []}, 1]]}, [], "dict keys must be str or int"),
        ({"__dict__": [[True, 1]]}, [], "dict keys must be str or int"),
        ({"__float__": "1.5"}, [], "bad float"),
        ({"__float__": ["nan"]}, [], "bad float"),
        ({"__dtype__": "complex32"}, [], "dtype 'complex32' not allowed"),
        ({"__dtype__": ["float32"]}, [], "malformed value"),
        ({"__device__": "cuda:123"}, [], "bad device"),
        ({"__device__": "cpu "}, [], "bad device"),
        ({"__device__": "meta:0"}, [], "bad device"),
        ({"__device__": "CPU"}, [], "bad device"),
        ({"__device__": ["cpu"]}, [], "bad device"),
        ({"__tensor__": 0, "dtype": "float32", "shape": [1], "device": "cpux"}, [b"\0" * 4], "bad device"),
        ({"__tensor__": 0, "dtype": "float32", "shape": [2]}, [b"\0" * 7], "needs 8 bytes, got 7"),
        ({"__tensor__": 1, "dtype": "float32", "shape": [1]}, [b"\0" * 4], "bad tensor buffer index"),
        ({"__tensor__": True, "dtype": "float32", "shape": [1]}, [b"\0" * 4], "bad tensor buffer index"),
        ({"__tensor__": 0, "dtype": "float32", "shape": [True]}, [b"\0" * 4], "bad tensor shape"),
        ({"__tensor__": 0, "dtype": "float32", "shape": [-1]}, [b""], "bad tensor shape"),
        ({"__tensor__": 0, "dtype": "float32", "shape": "2"}, [b""], "bad tensor shape"),
        ({"__tensor__": 0, "shape": [1]}, [b"\0"], "dtype None not allowed"),
        ({"__tensor__": None, "dtype": "int8", "shape": [0, 2**70], "device": "meta"}, [], "malformed value"),
    ],
)
def test_malformed_values_are_refused_with_the_reason(obj, buffers, match):
    """Each malformed value is a :class:`ProtocolError` that says what is wrong."""
    with pytest.raises(ProtocolError, match=match):
        decode(obj, buffers)


def test_the_trusted_side_refuses_devices_it_does_not_allow():
    """``device_ok`` decides which devices may be built, for tensors and device values alike."""
    with pytest.raises(ProtocolError, match="device 'cuda:1' not allowed"):
        decode({"__device__": "cuda:1"}, [], no_cuda)
    with pytest.raises(ProtocolError, match="device 'cuda' not allowed"):
        decode({"__tensor__": 0, "dtype": "float32", "shape": [1], "device": "cuda"}, [b"\0" * 4], no_cuda)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_a_cuda_tensor_on_a_machine_without_cuda_is_a_protocol_error():
    """Without ``device_ok`` (the worker side), a cuda tensor that cannot be built on this
    machine is a :class:`ProtocolError`, as decode's docstring promises for any malformed input."""
    with pytest.raises(ProtocolError):
        decode({"__tensor__": 0, "dtype": "float32", "shape": [1], "device": "cuda"}, [b"\0" * 4])


def framed(header):
    """A frame whose header is the bytes ``header`` and no buffers follow."""
    return struct.pack(">I", len(header)) + header


@pytest.mark.parametrize(
    ("frame", "match"),
    [
        (struct.pack(">I", protocol.MAX_HEADER + 1), "header too large"),
        (framed(b"{x}"), "bad JSON header: JSONDecodeError"),
        (framed(b"\xff\xfe"), "bad JSON header"),
        (framed(b"[]"), "bad buffer lengths"),
        (framed(b'{"__buffers__":[-1]}'), "bad buffer lengths"),
        (framed(b'{"__buffers__":[1.5]}'), "bad buffer lengths"),
        (framed(b'{"__buffers__":[true]}'), "bad buffer lengths"),
        (framed(b'{"__buffers__":"ab"}'), "bad buffer lengths"),
        (framed(b'{"__buffers__":[268435456,1]}'), "bad buffer lengths"),
    ],
    ids=[
        "header over the cap",
        "not JSON",
        "not UTF-8",
        "not an object",
        "negative",
        "float",
        "bool",
        "str",
        "payload",
    ],
)
def test_recv_refuses_bad_frames_before_reading_their_buffers(frame, match):
    """A frame whose header is too large, not JSON, or lists bad buffer lengths is refused
    with :class:`ProtocolError` (the declared buffers are never read)."""
    with pytest.raises(ProtocolError, match=match):
        recv(FakeSocket(frame))


def test_recv_of_a_deeply_nested_header_is_a_protocol_error():
    """JSON nested past the parser's recursion limit is a :class:`ProtocolError`, not a
    ``RecursionError``."""
    text = b"[" * 200_000 + b"]" * 200_000
    with pytest.raises(ProtocolError, match="bad JSON header"):
        recv(FakeSocket(struct.pack(">I", len(text)) + text, chunk=1 << 20))


def test_recv_stops_at_a_closed_connection_and_at_its_deadline():
    """A frame cut short raises ``EOFError``; a deadline already passed raises ``TimeoutError``."""
    frame = pack({"a": 1}, [b"abcd"])
    with pytest.raises(EOFError):
        recv(FakeSocket(frame[:-1]))
    with pytest.raises(TimeoutError):
        recv(FakeSocket(frame), deadline=time.monotonic() - 1)


# ---- the caps ------------------------------------------------------------------------------


def test_encode_depth_cap():
    """A value nested ``MAX_DEPTH`` deep is sent; one level more is refused (a list that
    holds itself too, instead of a ``RecursionError``)."""
    assert decode(*encode(nested_list(protocol.MAX_DEPTH))) == nested_list(protocol.MAX_DEPTH)
    with pytest.raises(ProtocolError, match="nested too deeply"):
        encode(nested_list(protocol.MAX_DEPTH + 1))
    loop = []
    loop.append(loop)
    with pytest.raises(ProtocolError, match="nested too deeply"):
        encode(loop)


def test_decode_depth_cap():
    """Decoding accepts ``MAX_DEPTH`` levels (lists or tagged tuples) and refuses one more."""
    assert decode(nested_list(protocol.MAX_DEPTH), []) == nested_list(protocol.MAX_DEPTH)
    with pytest.raises(ProtocolError, match="nested too deeply"):
        decode(nested_list(protocol.MAX_DEPTH + 1), [])
    tuples = 0
    for _ in range(protocol.MAX_DEPTH + 1):
        tuples = {"__tuple__": [tuples]}
    with pytest.raises(ProtocolError, match="nested too deeply"):
        decode(tuples, [])
    with pytest.raises(ProtocolError, match="nested too deeply"):
        decode(nested_list(10_000), [])


def test_decode_item_cap():
    """A value of ``MAX_ITEMS`` items (the list counts as one) decodes; one item more is refused."""
    fits = [0] * (protocol.MAX_ITEMS - 1)
    assert decode(fits, []) == fits
    with pytest.raises(ProtocolError, match="too large"):
        decode(fits + [0], [])


def test_tensor_caps():
    """A tensor has at most 16 dimensions and ``MAX_PAYLOAD`` elements (checked before any
    memory is allocated, meta tensors included)."""
    assert decode({"__tensor__": 0, "dtype": "int8", "shape": [1] * 16}, [b"\x05"]).shape == (1,) * 16
    with pytest.raises(ProtocolError, match="bad tensor shape"):
        decode({"__tensor__": 0, "dtype": "int8", "shape": [1] * 17}, [b"\x05"])
    meta = {"__tensor__": None, "dtype": "int8", "device": "meta"}
    assert decode({**meta, "shape": [protocol.MAX_PAYLOAD]}, []).shape == (protocol.MAX_PAYLOAD,)
    with pytest.raises(ProtocolError, match="tensor too large"):
        decode({**meta, "shape": [protocol.MAX_PAYLOAD + 1]}, [])
    with pytest.raises(ProtocolError, match="tensor too large"):
        decode({**meta, "shape": [2**40, 2**40]}, [])


def test_pack_caps(monkeypatch):
    """A frame is refused when its header passes ``MAX_HEADER`` bytes or its buffers pass
    ``MAX_PAYLOAD`` bytes in all; at the caps exactly it is sent."""
    header = {"s": "x" * 10}
    size = len(json.dumps({**header, "__buffers__": [4, 4]}, separators=(",", ":")))
    monkeypatch.setattr(protocol, "MAX_HEADER", size)
    monkeypatch.setattr(protocol, "MAX_PAYLOAD", 8)
    frame = pack(header, [b"abcd", b"efgh"])
    assert recv(FakeSocket(frame)) == (header, [b"abcd", b"efgh"])
    with pytest.raises(ProtocolError, match="message too large"):
        pack({"s": "x" * 11}, [b"abcd", b"efgh"])
    with pytest.raises(ProtocolError, match="message too large"):
        pack(header, [b"abcd", b"efghi"])


def test_recv_caps_follow_the_constants(monkeypatch):
    """``recv`` reads the caps when it runs: a header or a buffer total one byte over is refused."""
    frame = pack({"s": "abc"}, [b"0123456789"])
    header_size = struct.unpack(">I", frame[:4])[0]
    monkeypatch.setattr(protocol, "MAX_HEADER", header_size - 1)
    with pytest.raises(ProtocolError, match="header too large"):
        recv(FakeSocket(frame))
    monkeypatch.setattr(protocol, "MAX_HEADER", header_size)
    monkeypatch.setattr(protocol, "MAX_PAYLOAD", 9)
    with pytest.raises(ProtocolError, match="bad buffer lengths"):
        recv(FakeSocket(frame))
    monkeypatch.setattr(protocol, "MAX_PAYLOAD", 10)
    assert recv(FakeSocket(frame)) == ({"s": "abc"}, [b"0123456789"])


def test_wire_names_are_torch_s_dtype_names():
    """Each allowed dtype travels under torch's own name for it (``float32`` for
    ``torch.float32``); one outside the list travels under its name and is refused."""
    for name, dtype in DTYPES.items():
        assert protocol.DTYPE_NAMES[dtype] == name == str(dtype).removeprefix("torch.")
    header, buffers = encode(torch.zeros(2, dtype=torch.uint16))
    assert header["dtype"] == "uint16"
    with pytest.raises(ProtocolError, match="dtype 'uint16' not allowed"):
        decode(header, buffers)


def test_a_decoded_tensor_owns_its_memory():
    """A decoded tensor is a tensor of its own: writing to it or resizing it changes neither
    the frame's bytes nor another decoding of them."""
    header, buffers = encode(torch.arange(6, dtype=torch.float64).reshape(2, 3))
    frozen = bytes(buffers[0])
    first, second = decode(header, buffers), decode(header, buffers)
    first.add_(1)
    first.resize_(12)  # resizable: not a view of a fixed buffer
    assert bytes(buffers[0]) == frozen
    assert second.tolist() == [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]
