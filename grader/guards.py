"""Trip-wires for the library calls an exercise must not use (see the contract).

A deterrent, not a security boundary (the grade never depends on it alone).  While a
student's function runs, a :class:`torch.overrides.TorchFunctionMode` watches
every torch call; calling one that does the whole exercise (``F.scaled_dot_product_attention``,
``nn.LSTMCell``'s kernel, ...) is recorded and turned into a :class:`ForbiddenCall`,
however the function was imported.  ``kl_divergence`` is pure Python and is caught by
swapping its dispatch table for the duration of the call.
"""

import contextlib

import torch.distributions.kl as _kl
from torch.overrides import TorchFunctionMode

from grader.errors import ForbiddenCall

#: torch function name -> what the student called, for the message.
FORBIDDEN_TORCH_FUNCTIONS = {
    "scaled_dot_product_attention": "torch.nn.functional.scaled_dot_product_attention",
    "multi_head_attention_forward": "torch.nn.MultiheadAttention / F.multi_head_attention_forward",
    "lstm": "torch.nn.LSTM",
    "lstm_cell": "torch.nn.LSTMCell",
    "gru": "torch.nn.GRU",
    "gru_cell": "torch.nn.GRUCell",
}


class _Watch(TorchFunctionMode):
    def __init__(self, found):
        super().__init__()
        self.found = found

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        for fragment, what in FORBIDDEN_TORCH_FUNCTIONS.items():
            # fragments also catch the private variants (aten._scaled_dot_product_attention_math, ...)
            if name == fragment or (fragment in name and name.startswith("_")):
                self.found.append(what)
                raise ForbiddenCall(f"calls {what}, which this exercise asks you to write yourself")
        return func(*args, **(kwargs or {}))


class _NoKL(dict):
    def __init__(self, found):
        super().__init__()
        self.found = found

    def __getitem__(self, key):
        self.found.append("torch.distributions.kl_divergence")
        raise ForbiddenCall("calls torch.distributions.kl_divergence, which this exercise asks you to write yourself")


@contextlib.contextmanager
def forbid_library_solutions():
    """Run the body with the forbidden calls trapped; raise ``ForbiddenCall`` after it
    if any was attempted (even when the student's code caught the first exception)."""
    found = []
    memo, dispatch = _kl._KL_MEMOIZE, _kl._dispatch_kl

    def no_dispatch(*_):
        found.append("torch.distributions.kl_divergence")
        raise ForbiddenCall("calls torch.distributions.kl_divergence, which this exercise asks you to write yourself")

    _kl._KL_MEMOIZE, _kl._dispatch_kl = _NoKL(found), no_dispatch
    try:
        with _Watch(found):
            yield
    finally:
        _kl._KL_MEMOIZE, _kl._dispatch_kl = memo, dispatch
    if found:
        raise ForbiddenCall(f"calls {found[0]}, which this exercise asks you to write yourself")
