"""Wire format between the trusted grader and a worker: JSON plus raw tensor bytes.

A frame is ``>I`` header length, the UTF-8 JSON header, then the tensor buffers whose
lengths the header lists.  Values are plain JSON with tagged objects for what JSON lacks:
tuples, dicts with int keys, tensors (dtype, shape, device, buffer index), dtypes and
devices.  Nothing is ever unpickled; decoding builds only plain ``torch.Tensor`` objects
of whitelisted dtypes whose byte count matches their shape.  Sizes are capped.
"""

import collections
import json
import math
import re
import socket
import struct
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch

MAX_HEADER = 8 << 20
MAX_PAYLOAD = 256 << 20
MAX_DEPTH = 32
MAX_ITEMS = 100_000

DTYPES = {
    str(d).replace("torch.", ""): d
    for d in (
        torch.float16,
        torch.bfloat16,
        torch.float32,
        torch.float64,
        torch.bool,
        torch.uint8,
        torch.int8,
        torch.int16,
        torch.int32,
        torch.int64,
        torch.complex64,
        torch.complex128,
    )
}


#: The wire name of each allowed dtype.
DTYPE_NAMES = {dtype: name for name, dtype in DTYPES.items()}
#: Devices every side may name without further checks of their form.
_PLAIN_DEVICES = frozenset({"cpu", "meta"})


class ProtocolError(Exception):
    """A frame that breaks the format or its caps."""


#: Decides whether a worker may name a device (``"cuda:1"``); ``None``: any well-formed one.
DeviceCheck = Callable[[str], bool] | None


def encode(value: Any) -> tuple[Any, list[bytes]]:
    """``(header_obj, buffers)`` for a value made of plain data and tensors."""
    buffers: list[bytes] = []
    return _enc(value, buffers, 0), buffers


def encode_into(value: Any, buffers: list[bytes]) -> Any:
    """The header object for ``value``, its tensors' bytes appended to ``buffers`` (their
    indices follow those already there): several values of one frame, encoded in turn."""
    return _enc(value, buffers, 0)


def _enc(value: Any, buffers: list[bytes], depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise ProtocolError("value nested too deeply")
    kind = type(value)
    # identity, not ``in``: a metaclass's ``__eq__`` must not run (and this runs for every value)
    if value is None or kind is bool or kind is int or kind is str:
        return value
    if kind is float:
        return value if math.isfinite(value) else {"__float__": repr(value)}
    if kind is torch.Tensor or kind is torch.nn.Parameter:
        t = value.detach()
        meta: dict[str, Any] = {
            "__tensor__": len(buffers),
            "dtype": DTYPE_NAMES.get(t.dtype) or str(t.dtype).replace("torch.", ""),
            "shape": list(t.shape),
            "device": str(t.device),
        }
        if t.device.type == "meta":
            meta["__tensor__"] = None
        else:
            flat = t.to("cpu").contiguous().reshape(-1)
            raw = flat.view(torch.uint8) if flat.numel() else flat
            buffers.append(raw.numpy().tobytes() if flat.numel() else b"")
        return meta
    if kind is tuple:
        return {"__tuple__": [_enc(v, buffers, depth + 1) for v in value]}
    if kind is list:
        return [_enc(v, buffers, depth + 1) for v in value]
    if kind is dict or kind is collections.OrderedDict:
        return {"__dict__": [[_enc(k, buffers, depth + 1), _enc(v, buffers, depth + 1)] for k, v in value.items()]}
    if kind is torch.dtype:
        return {"__dtype__": str(value).replace("torch.", "")}
    if kind is torch.device:
        return {"__device__": str(value)}
    raise ProtocolError(f"cannot send a {kind.__module__}.{kind.__qualname__}")


def decode(obj: Any, buffers: Sequence[bytes], device_ok: DeviceCheck = None) -> Any:
    """Rebuild a value from :func:`encode`'s output (trusted-side rules: plain data only).

    Any malformed input raises :class:`ProtocolError`, whatever went wrong inside.
    """
    counter = [0]
    try:
        return _dec(obj, buffers, 0, counter, device_ok)
    except ProtocolError:
        raise
    except (
        RecursionError,
        MemoryError,
        RuntimeError,
        TypeError,
        ValueError,
        OverflowError,
        KeyError,
        AssertionError,
    ) as exc:  # AssertionError: torch without CUDA asked for a cuda tensor
        raise ProtocolError(f"malformed value ({type(exc).__name__}: {str(exc)[:200]})") from None


def _dec(obj: Any, buffers: Sequence[bytes], depth: int, counter: list[int], device_ok: DeviceCheck) -> Any:
    counter[0] += 1
    if depth > MAX_DEPTH or counter[0] > MAX_ITEMS:
        raise ProtocolError("value too large or nested too deeply")
    if obj is None or type(obj) in (bool, int, float, str):
        return obj
    if type(obj) is list:
        return [_dec(v, buffers, depth + 1, counter, device_ok) for v in obj]
    if type(obj) is not dict or len(obj) == 0:
        raise ProtocolError("unexpected JSON value")
    if "__tuple__" in obj:
        if type(obj["__tuple__"]) is not list:
            raise ProtocolError("bad tuple")
        return tuple(_dec(v, buffers, depth + 1, counter, device_ok) for v in obj["__tuple__"])
    if "__dict__" in obj:
        if type(obj["__dict__"]) is not list:
            raise ProtocolError("bad dict")
        out: dict[str | int, Any] = {}
        for pair in obj["__dict__"]:
            if type(pair) is not list or len(pair) != 2:
                raise ProtocolError("bad dict entry")
            key = _dec(pair[0], buffers, depth + 1, counter, device_ok)
            if not _one_of(type(key), (str, int)):
                raise ProtocolError("dict keys must be str or int")
            out[key] = _dec(pair[1], buffers, depth + 1, counter, device_ok)
        return out
    if "__float__" in obj:
        text = obj["__float__"]
        if text not in ("nan", "inf", "-inf"):
            raise ProtocolError("bad float")
        return float(text)
    if "__dtype__" in obj:
        return _dtype(obj["__dtype__"])
    if "__device__" in obj:
        return torch.device(_device(obj["__device__"], device_ok))
    if "__tensor__" in obj:
        return _tensor(obj, buffers, device_ok)
    raise ProtocolError("unknown tagged value")


def _dtype(name: Any) -> torch.dtype:
    if name not in DTYPES:
        raise ProtocolError(f"dtype {name!r} not allowed")
    return DTYPES[name]


def _device(name: Any, device_ok: DeviceCheck) -> str:
    if type(name) is not str or (name not in _PLAIN_DEVICES and not re.fullmatch(r"cuda(:\d{1,2})?", name)):
        raise ProtocolError("bad device")
    if device_ok is not None and not device_ok(name):
        raise ProtocolError(f"device {name!r} not allowed")
    return name


def _tensor(obj: dict[str, Any], buffers: Sequence[bytes], device_ok: DeviceCheck) -> torch.Tensor:
    dtype = _dtype(obj.get("dtype"))
    shape = obj.get("shape")
    if type(shape) is not list or len(shape) > 16:
        raise ProtocolError("bad tensor shape")
    numel = 1
    for size in shape:
        if type(size) is not int or size < 0:
            raise ProtocolError("bad tensor shape")
        numel *= size
    if numel > MAX_PAYLOAD:
        raise ProtocolError("tensor too large")
    device = _device(obj.get("device", "cpu"), device_ok)
    if device == "meta":
        return torch.empty(shape, dtype=dtype, device="meta")
    index = obj["__tensor__"]
    if type(index) is not int or not 0 <= index < len(buffers):
        raise ProtocolError("bad tensor buffer index")
    raw = buffers[index]
    itemsize = dtype.itemsize
    if len(raw) != numel * itemsize:
        raise ProtocolError(f"tensor of shape {shape} and dtype {dtype} needs {numel * itemsize} bytes, got {len(raw)}")
    if numel == 0:
        t = torch.empty(shape, dtype=dtype)
    else:
        t = torch.frombuffer(bytearray(raw), dtype=dtype).reshape(shape).clone()  # owns resizable storage
    return t if device == "cpu" else t.to(device)


def pack(header_obj: dict[str, Any], buffers: Sequence[bytes]) -> bytes:
    """Bytes of one frame."""
    framed = dict(header_obj, __buffers__=[len(b) for b in buffers])
    header = json.dumps(framed, separators=(",", ":")).encode()
    if len(header) > MAX_HEADER or sum(len(b) for b in buffers) > MAX_PAYLOAD:
        raise ProtocolError("message too large")
    return b"".join([struct.pack(">I", len(header)), header, *buffers])


def send(sock: socket.socket, header_obj: dict[str, Any], buffers: Iterable[bytes] = ()) -> None:
    """Write one frame to ``sock``."""
    sock.sendall(pack(header_obj, list(buffers)))


def _recv_exact(sock: socket.socket, n: int, deadline: float | None = None) -> bytes:
    chunks: list[bytes] = []
    got = 0
    while got < n:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("deadline passed")
            sock.settimeout(left)
        chunk = sock.recv(min(n - got, 1 << 20))
        if not chunk:
            raise EOFError("connection closed")
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def recv(sock: socket.socket, deadline: float | None = None) -> tuple[Any, list[bytes]]:
    """Read one frame: ``(header_obj, buffers)``; :class:`ProtocolError` past the caps.

    With ``deadline`` (a ``time.monotonic()`` value) the whole frame must arrive by then,
    however slowly the other side dribbles it: else ``socket.timeout``.
    """
    (size,) = struct.unpack(">I", _recv_exact(sock, 4, deadline))
    if size > MAX_HEADER:
        raise ProtocolError("header too large")
    try:
        header = json.loads(_recv_exact(sock, size, deadline))
    except (ValueError, RecursionError) as exc:
        raise ProtocolError(f"bad JSON header: {type(exc).__name__}") from None
    lengths = header.pop("__buffers__", []) if type(header) is dict else None
    if type(lengths) is not list or any(type(n) is not int or n < 0 for n in lengths) or sum(lengths) > MAX_PAYLOAD:
        raise ProtocolError("bad buffer lengths")
    if len(lengths) < 2:
        return header, [_recv_exact(sock, n, deadline) for n in lengths]
    # the buffers follow each other: read them in one go (fewer waits), then cut
    whole, buffers, at = _recv_exact(sock, sum(lengths), deadline), [], 0
    for n in lengths:
        buffers.append(whole[at : at + n])
        at += n
    return header, buffers


def _one_of(kind: type, kinds: tuple[type, ...]) -> bool:
    """``kind`` is one of ``kinds`` by identity (``in`` would call a metaclass's ``__eq__``)."""
    for k in kinds:
        if kind is k:
            return True
    return False
