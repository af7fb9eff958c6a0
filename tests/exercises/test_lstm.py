"""Property tests of module ``lstm`` (exercise IDs ``lstm.*``).

Every test reaches the submission through the ``impl`` adapter.  Expected values come from
PyTorch's own ``nn.LSTMCell``, ``nn.LSTM(batch_first=True)`` and ``nn.GRUCell`` holding the
same weights (the gates too: :func:`lstm_gates_oracle` reads each gate off an
``nn.LSTMCell`` whose weights it rigs), from the parameters of ``nn.LSTM`` / ``nn.GRU``,
from closed-form gradients computed inline, and from properties.  None of these oracles
can be pasted into the stubs as an answer: the forbidden-call check refuses ``nn.LSTM*``
and ``nn.GRU*`` in a submission (``python -m grader release`` grades every function of
this file pasted into the stubs, and fails when one earns a point).  No test needs the
reference in ``solutions/``: every test is marked ``oracle("library")``, and the file
imports without ``solutions/``.

Drawn sizes T, B, H and I are all different, so a loop over the wrong axis or a
transposed weight cannot hide behind a square shape.  Explicit examples set one of them
to 1 in turn (the others still different), so a ``.squeeze()`` that drops the batch axis
when B = 1 cannot hide either.
"""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from grader.execution.calls import Call, tensor_leaves
from grader.testing import strategies as S
from grader.testing.checks import (
    INT_HINT,
    assert_close,
    assert_grad,
    describe,
    expect_inputs_unchanged,
    expect_int,
    expect_tensor,
    fail,
    reference_grads,
    unpack,
)
from grader.testing.devices import DeviceCase, device_tests
from grader.testing.plugin import implementation_fixture
from grader.testing.replay import cotangents

MODULE = "lstm"
impl = implementation_fixture(MODULE)

WEIGHTS = ("W_ih", "W_hh", "b_ih", "b_hh")
GATES = ("i", "f", "g", "o")
#: Added to both biases of a gate block, it pins the gate to 0 or 1: the pre-activations
#: of the drawn cases stay below 14 in size, so sigmoid(40 - 14) = 1 - 5e-12.
PIN = 20.0


# ----------------------------------------------------------------------------- inputs


def rnn_inputs(t, b, h, i, *, blocks=4, seq=False, dtype=torch.float32, seed=0, c_scale=2.0):
    """x, h, c and weights in PyTorch's layout (``blocks * H`` rows) for sizes T, B, H, I;
    ``seq``: x is ``(B, T, I)``, else ``(B, I)``; values from ``S.generator(seed)``."""
    g = S.generator(seed)
    case = dict(
        x=S.uniform(g, *((b, t, i) if seq else (b, i)), dtype=dtype),
        h=S.uniform(g, b, h, dtype=dtype, scale=0.9),
        c=S.uniform(g, b, h, dtype=dtype, scale=c_scale),
        W_ih=S.uniform(g, blocks * h, i, dtype=dtype),
        W_hh=S.uniform(g, blocks * h, h, dtype=dtype),
        b_ih=S.uniform(g, blocks * h, dtype=dtype, scale=0.5),
        b_hh=S.uniform(g, blocks * h, dtype=dtype, scale=0.5),
    )
    return case


@S.composite
def rnn_case(draw, blocks=4, seq=False, dtype=None, c_scale=2.0):
    """x, h, c and weights in PyTorch's layout (``blocks * H`` rows) with T, B, H, I all
    different; ``seq``: x is ``(B, T, I)``, else ``(B, I)``."""
    t, b, h, i = draw(S.distinct_sizes(4, lo=2, hi=7))
    dtype = dtype or draw(S.dtypes)
    seed = draw(S.seeds)
    return rnn_inputs(t, b, h, i, blocks=blocks, seq=seq, dtype=dtype, seed=seed, c_scale=c_scale)


def rnn_edges(*names, blocks=4, seq=False, dtype=None, c_scale=2.0):
    """Explicit cases, one per size in ``names`` (t, b, h, i) set to 1, the others distinct;
    the dtype alternates.  Without ``seq`` there is no T, so only b, h and i matter."""
    return [
        rnn_inputs(**sizes, blocks=blocks, seq=seq, dtype=dtype or S.FLOAT_DTYPES[n % 2], seed=n, c_scale=c_scale)
        for n, sizes in enumerate(S.with_one(dict(t=2, b=3, h=4, i=5), *names))
    ]


#: The sizes of one step (B, H, I) and of a sequence (T too).
STEP_SIZES = ("b", "h", "i")
SEQ_SIZES = ("t", "b", "h", "i")


def _weights(case):
    return tuple(case[w] for w in WEIGHTS)


def gates_args(case):
    """The arguments of ``lstm_gates``: x, h_prev and the four weights."""
    return (case["x"], case["h"], *_weights(case))


def cell_args(case):
    """The arguments of ``lstm_cell``: x, h_prev, c_prev and the four weights."""
    return (case["x"], case["h"], case["c"], *_weights(case))


def gru_args(case):
    """The arguments of ``gru_cell``: x, h_prev and the four weights."""
    return gates_args(case)


GATES_NAMES = ("x", "h_prev", *WEIGHTS)
CELL_NAMES = ("x", "h_prev", "c_prev", *WEIGHTS)
FORWARD_NAMES = ("x", "h0", "c0", *WEIGHTS)


def _io(names, args):
    return describe(**dict(zip(names, args)))


def _pinned(case, block, value, blocks=4):
    """A copy of ``case`` whose biases add ``2 * value`` to gate block ``block``."""
    hidden = case["h"].shape[-1]
    out = dict(case)
    for name in ("b_ih", "b_hh"):
        bias = case[name].clone()
        bias[block * hidden : (block + 1) * hidden] += value
        out[name] = bias
    return out


# ----------------------------------------------------------------------------- oracles


def _load(module, case, suffix=""):
    with torch.no_grad():
        for ours, theirs in zip(WEIGHTS, ("weight_ih", "weight_hh", "bias_ih", "bias_hh")):
            getattr(module, theirs + suffix).copy_(case[ours])
    return module


def torch_lstm_cell(case):
    """``nn.LSTMCell`` holding the case's weights."""
    return _load(torch.nn.LSTMCell(case["x"].shape[-1], case["h"].shape[-1], dtype=case["x"].dtype), case)


def torch_lstm(case):
    """``nn.LSTM(batch_first=True)`` holding the case's weights."""
    lstm = torch.nn.LSTM(case["x"].shape[-1], case["h"].shape[-1], batch_first=True, dtype=case["x"].dtype)
    return _load(lstm, case, "_l0")


def torch_gru_cell(case):
    """``nn.GRUCell`` holding the case's weights."""
    return _load(torch.nn.GRUCell(case["x"].shape[-1], case["h"].shape[-1], dtype=case["x"].dtype), case)


def lstm_cell_oracle(x, h, c, W_ih, W_hh, b_ih, b_hh):
    """One LSTM step ``(h', c')`` by ``nn.LSTMCell`` holding these weights, in float64,
    returned in x's dtype (the contract's layout is PyTorch's: blocks i, f, g, o)."""
    case = _float64(dict(x=x, h=h, c=c, W_ih=W_ih, W_hh=W_hh, b_ih=b_ih, b_hh=b_hh))
    with torch.no_grad():
        h_new, c_new = torch_lstm_cell(case)(case["x"], (case["h"], case["c"]))
    return h_new.to(x.dtype), c_new.to(x.dtype)


def lstm_forward_oracle(x, h0, c0, W_ih, W_hh, b_ih, b_hh):
    """``(outputs, h_T, c_T)`` by ``nn.LSTM(batch_first=True)`` holding these weights, in float64,
    returned in x's dtype."""
    case = _float64(dict(x=x, h=h0, c=c0, W_ih=W_ih, W_hh=W_hh, b_ih=b_ih, b_hh=b_hh))
    with torch.no_grad():
        out, (h_n, c_n) = torch_lstm(case)(case["x"], (case["h"][None], case["c"][None]))
    return out.to(x.dtype), h_n[0].to(x.dtype), c_n[0].to(x.dtype)


def gru_cell_oracle(x, h, W_ih, W_hh, b_ih, b_hh):
    """One GRU step ``h'`` by ``nn.GRUCell`` holding these weights, in float64, returned in x's dtype."""
    case = _float64(dict(x=x, h=h, W_ih=W_ih, W_hh=W_hh, b_ih=b_ih, b_hh=b_hh))
    with torch.no_grad():
        return torch_gru_cell(case)(case["x"], case["h"]).to(x.dtype)


#: The bias that pins a rigged gate block to 1: sigmoid(40) and tanh(40) are 1.0 exactly in float64.
RIG = 40.0


def lstm_gates_oracle(x, h, W_ih, W_hh, b_ih, b_hh):
    """The gates ``(i, f, g, o)`` as ``nn.LSTMCell`` computes them, in float64, returned in x's dtype.

    Started from ``c = 0``, a cell's new state is ``c' = i * g``.  For a sigmoid gate (i, f
    or o) the cell gets that gate's block of rows in its input-gate slot and a candidate
    slot pinned to ``tanh(RIG) = 1`` (zero weights, bias ``RIG``): its ``c'`` is that gate.
    For ``g`` the input-gate slot is pinned to ``sigmoid(RIG) = 1`` instead: ``c' = g``.
    The weights reach the cell through ``torch.func.functional_call``, so gradients flow
    back to every input."""
    x64, h64, *weights = (t.double() for t in (x, h, W_ih, W_hh, b_ih, b_hh))
    hidden, inputs = h.shape[-1], x.shape[-1]
    cell = torch.nn.LSTMCell(inputs, hidden, dtype=torch.float64)
    blocks = [w.split(hidden) for w in weights]  # per weight, the blocks i, f, g, o
    zero_ih, zero_hh = (
        torch.zeros(hidden, inputs, dtype=torch.float64),
        torch.zeros(hidden, hidden, dtype=torch.float64),
    )
    zero_b = torch.zeros(hidden, dtype=torch.float64)
    pinned = (zero_ih, zero_hh, zero_b + RIG, zero_b)

    def block(k):
        """Block ``k`` (i, f, g, o) of every weight."""
        return tuple(w[k] for w in blocks)

    def new_cell_state(i_slot, g_slot):
        """``c'`` of the cell from ``c = 0`` with these blocks in its input-gate and candidate slots."""
        slots = (i_slot, pinned, g_slot, pinned)
        params = {
            name: torch.cat([slot[n] for slot in slots])
            for n, name in enumerate(("weight_ih", "weight_hh", "bias_ih", "bias_hh"))
        }
        _, c_new = torch.func.functional_call(cell, params, (x64, (h64, torch.zeros_like(h64))))
        return c_new.to(x.dtype)

    return (
        new_cell_state(block(0), pinned),
        new_cell_state(block(1), pinned),
        new_cell_state(pinned, block(2)),
        new_cell_state(block(3), pinned),
    )


def _float64(case):
    """The case in float64: the oracles' gradients are computed in float64."""
    return {name: value.double() for name, value in case.items()}


def _in_dtype(grads, case):
    return [gr.to(case["x"].dtype) for gr in grads]


def _keeps_dtype_and_inputs(impl, name, args, names, outputs):
    """Call ``name``; check every output (``outputs``: name -> shape) has the input's dtype
    and that no argument changed."""
    io = _io(names, args)
    result = impl.invoke(Call(name, args, want_inputs_after=True))
    got = result.outputs
    flat = tensor_leaves(got) if len(outputs) > 1 else [got]
    if len(outputs) > 1 and len(flat) != len(outputs):
        fail(f"{name} must return {', '.join(outputs)}", [f"yours returned {len(flat)} tensor(s)"], io)
    for (out_name, shape), tensor in zip(outputs.items(), flat):
        expect_tensor(tensor, out_name, shape=shape, dtype=args[0].dtype, inputs=io)
    expect_inputs_unchanged(
        result,
        names,
        args,
        name,
        inputs=io,
        hints=["use out-of-place ops (c = f * c_prev + i * g, not c_prev.mul_(f) or c_prev *= f)"],
    )


# ----------------------------------------------------------------------------- lstm.gates


def _call_gates(impl, case):
    args = gates_args(case)
    io = _io(GATES_NAMES, args)
    got = unpack(impl.invoke(Call("lstm_gates", args)).outputs, GATES, "lstm_gates", io)
    return got, args, io


@pytest.mark.exercise("lstm.gates", weight=3)
@pytest.mark.oracle("library")
@S.edge_examples("case", rnn_edges(*STEP_SIZES))
@given(rnn_case())
def test_gates_match_formula(impl, case):
    """i, f, o = sigmoid and g = tanh of blocks 0..3 of W_ih x + b_ih + W_hh h + b_hh (i, f, g, o), as in nn.LSTMCell"""
    got, args, io = _call_gates(impl, case)
    expected = lstm_gates_oracle(*args)
    for k, (name, mine, want) in enumerate(zip(GATES, got, expected)):
        func = "tanh" if name == "g" else "sigmoid"
        assert_close(
            mine,
            want,
            name,
            prop=f"gate {name} differs from {func}(block {k} of W_ih x + b_ih + W_hh h + b_hh) (gate order i, f, g, o)",
            inputs=io,
        )


def _compose(gates, c_prev):
    """``(h, c)`` of an LSTM step built from gates ``(i, f, g, o)``."""
    i, f, g, o = gates
    c = f * c_prev + i * g
    return o * torch.tanh(c), c


@pytest.mark.exercise("lstm.gates")
@pytest.mark.oracle("library")
@S.edge_examples("case", rnn_edges(*STEP_SIZES))
@given(rnn_case())
def test_gates_reproduce_lstm_cell(impl, case):
    """c = f*c_prev + i*g and h = o*tanh(c) built from your gates agree with nn.LSTMCell"""
    gates, _, io = _call_gates(impl, case)
    for name, gate in zip(GATES, gates):
        expect_tensor(gate, name, shape=case["h"].shape, dtype=case["h"].dtype, inputs=io)
    h, c = _compose(gates, case["c"])
    h_exp, c_exp = torch_lstm_cell(case)(case["x"], (case["h"], case["c"]))
    for k, (name, mine, want) in enumerate((("f*c_prev + i*g", c, c_exp), ("o*tanh(c)", h, h_exp))):
        assert_close(
            mine,
            want.detach(),
            name,
            prop=f"{name} from your gates differs from nn.LSTMCell's {'c' if k == 0 else 'h'}",
            inputs=io,
        )


@pytest.mark.exercise("lstm.gates", kind="property")
@pytest.mark.oracle("library")
@S.edge_examples("case", rnn_edges(*STEP_SIZES))
@given(rnn_case())
def test_gates_lie_in_their_ranges(impl, case):
    """gates i, f and o lie in (0, 1) (sigmoids) and g in (-1, 1) (tanh), each (B, H)"""
    got, _, io = _call_gates(impl, case)
    for name, mine in zip(GATES, got):
        expect_tensor(mine, name, shape=case["h"].shape, dtype=case["h"].dtype, inputs=io)
        low, func = (-1, "tanh") if name == "g" else (0, "sigmoid")
        if bool((mine <= low).any() | (mine >= 1).any()):
            fail(
                f"gate {name} must lie in ({low}, 1): it goes through a {func}",
                [f"yours ranges over [{float(mine.min()):.4g}, {float(mine.max()):.4g}]"],
                io,
            )


@pytest.mark.exercise("lstm.gates")
@pytest.mark.oracle("library")
@S.edge_examples("case", rnn_edges(*STEP_SIZES))
@given(rnn_case())
def test_gates_gradients(impl, case):
    """gradients of i, f, g, o with respect to x, h_prev and all four weights match nn.LSTMCell's"""
    args = gates_args(case)
    io = _io(GATES_NAMES, args)
    cot = cotangents(5, *[case["h"].shape] * len(GATES))
    result = impl.invoke(Call("lstm_gates", args, grad_wrt=tuple(range(6)), cotangents=cot))
    expected = _in_dtype(reference_grads(lstm_gates_oracle, gates_args(_float64(case)), cot), case)
    for k, name in enumerate(GATES_NAMES):
        assert_grad(result.grads.get(k), expected[k], f"d/d{name}", inputs=io)


@pytest.mark.exercise("lstm.gates", kind="property")
@pytest.mark.oracle("library")
@S.edge_examples("case", rnn_edges(*STEP_SIZES))
@given(rnn_case())
def test_gates_keep_dtype_and_inputs(impl, case):
    """i, f, g, o are (B, H) in the input's dtype; no input is modified in place"""
    shape = case["h"].shape
    _keeps_dtype_and_inputs(impl, "lstm_gates", gates_args(case), GATES_NAMES, {n: shape for n in GATES})


# ----------------------------------------------------------------------------- lstm.cell


def _call_cell(impl, case):
    args = cell_args(case)
    io = _io(CELL_NAMES, args)
    got = unpack(impl.invoke(Call("lstm_cell", args)).outputs, ("h", "c"), "lstm_cell", io)
    return got, args, io


@pytest.mark.exercise("lstm.cell", weight=3)
@pytest.mark.oracle("library")
@S.edge_examples("case", rnn_edges(*STEP_SIZES))
@given(rnn_case())
def test_cell_matches_lstm_cell(impl, case):
    """(h, c) agree with torch.nn.LSTMCell given the same weights"""
    (h, c), _, io = _call_cell(impl, case)
    h_exp, c_exp = torch_lstm_cell(case)(case["x"], (case["h"], case["c"]))
    assert_close(
        h,
        h_exp.detach(),
        "h",
        prop="h differs from nn.LSTMCell's (h = o*tanh(c))",
        inputs=io,
    )
    assert_close(
        c,
        c_exp.detach(),
        "c",
        prop="c differs from nn.LSTMCell's (c = f*c_prev + i*g)",
        inputs=io,
    )


@pytest.mark.exercise("lstm.cell", kind="property")
@pytest.mark.oracle("library")
@S.edge_examples("case", rnn_edges(*STEP_SIZES))
@given(rnn_case())
def test_cell_open_forget_gate_keeps_cell_state(impl, case):
    """with the forget gate pinned to 1 and the input gate to 0 (through the biases), c = c_prev unchanged"""
    case = _pinned(_pinned(case, 1, PIN), 0, -PIN)
    (h, c), _, io = _call_cell(impl, case)
    io += " (biases pin f = 1, i = 0)"
    assert_close(
        c,
        case["c"],
        "c",
        prop="with f = 1 and i = 0 the cell state must pass through: c = c_prev",
        inputs=io,
        hints=["c = f*c_prev + i*g: f scales the old cell, i the candidate"],
    )


@pytest.mark.exercise("lstm.cell")
@pytest.mark.oracle("library")
@S.edge_examples("case", rnn_edges(*STEP_SIZES))
@given(rnn_case())
def test_cell_closed_forget_gate_forgets(impl, case):
    """with the forget gate pinned to 0, c = i*g (nn.LSTMCell's c from c_prev = 0) whatever c_prev was: it forgets"""
    case = _pinned(case, 1, -PIN)
    (h, c), _, io = _call_cell(impl, case)
    io += " (biases pin f = 0)"
    _, fresh = lstm_cell_oracle(case["x"], case["h"], torch.zeros_like(case["c"]), *_weights(case))
    assert_close(
        c,
        fresh,
        "c",
        prop="with f = 0 the old cell must be forgotten: c = i*g",
        inputs=io,
        hints=["c = f*c_prev + i*g: f scales the old cell"],
    )
    (h2, c2), _, _ = _call_cell(impl, dict(case, c=-case["c"]))
    assert_close(c2, c, "c", prop="with f = 0, c must not depend on c_prev (c_prev negated here)", inputs=io)


@pytest.mark.exercise("lstm.cell", kind="property")
@pytest.mark.oracle("library")
@S.edge_examples("case", rnn_edges(*STEP_SIZES, c_scale=3.0))
@given(rnn_case(c_scale=3.0))
def test_cell_hidden_state_bounded(impl, case):
    """|h| < 1: h = o*tanh(c) with o in (0, 1), even where |c| > 1"""
    (h, c), _, io = _call_cell(impl, case)
    expect_tensor(h, "h", shape=case["h"].shape, dtype=case["h"].dtype, inputs=io)
    if bool((h.abs() >= 1).any()):
        fail(
            "|h| must be < 1: h = o*tanh(c) with a gate o in (0, 1)",
            [f"yours reaches |h| = {float(h.abs().max()):.4g}"],
            io,
        )


@pytest.mark.exercise("lstm.cell")
@pytest.mark.oracle("library")
@S.edge_examples("case", rnn_edges(*STEP_SIZES))
@given(rnn_case())
def test_cell_gradients(impl, case):
    """gradients with respect to x, h_prev, c_prev and all four weights agree with nn.LSTMCell"""
    args = cell_args(case)
    io = _io(CELL_NAMES, args)
    cot = cotangents(7, case["h"].shape, case["h"].shape)
    result = impl.invoke(Call("lstm_cell", args, grad_wrt=tuple(range(7)), cotangents=cot))
    oracle = torch_lstm_cell(_float64(case))
    expected = reference_grads(
        lambda x, h, c: oracle(x, (h, c)), cell_args(_float64(case))[:3], cot, list(oracle.parameters())
    )
    expected = _in_dtype(expected, case)
    for k, name in enumerate(CELL_NAMES):
        assert_grad(result.grads.get(k), expected[k], f"d/d{name}", inputs=io)


@pytest.mark.exercise("lstm.cell", kind="property")
@pytest.mark.oracle("library")
@S.edge_examples("case", rnn_edges(*STEP_SIZES))
@given(rnn_case())
def test_cell_keeps_dtype_and_inputs(impl, case):
    """h and c are (B, H) in the input's dtype; no input (c_prev included) is modified in place"""
    shape = case["h"].shape
    _keeps_dtype_and_inputs(impl, "lstm_cell", cell_args(case), CELL_NAMES, {"h": shape, "c": shape})


# ----------------------------------------------------------------------------- lstm.forward


def forward_args(case):
    """The arguments of ``lstm_forward``: x, h0, c0 and the four weights."""
    return (case["x"], case["h"], case["c"], *_weights(case))


def _call_forward(impl, case):
    args = forward_args(case)
    io = _io(FORWARD_NAMES, args)
    result = impl.invoke(Call("lstm_forward", args))
    outputs, state = unpack(result.outputs, ("outputs", "(h_T, c_T)"), "lstm_forward", io)
    h_t, c_t = unpack(state, ("h_T", "c_T"), "lstm_forward's final state", io)
    return (outputs, h_t, c_t), args, io, result


def _steps(case):
    """nn.LSTMCell's (h, c) after every step, from (h0, c0), the state carried in float64."""
    cell = torch_lstm_cell(_float64(case))
    h, c, states = case["h"].double(), case["c"].double(), []
    with torch.no_grad():
        for t in range(case["x"].shape[1]):
            h, c = cell(case["x"][:, t].double(), (h, c))
            states.append((h.to(case["x"].dtype), c.to(case["x"].dtype)))
    return states


@pytest.mark.exercise("lstm.forward", weight=3)
@pytest.mark.oracle("library")
@S.edge_examples("case", rnn_edges(*SEQ_SIZES, seq=True))
@given(rnn_case(seq=True))
def test_forward_matches_nn_lstm(impl, case):
    """outputs and (h_T, c_T) agree with torch.nn.LSTM(batch_first=True) started from (h0, c0)"""
    (outputs, h_t, c_t), _, io, _ = _call_forward(impl, case)
    out_exp, (h_exp, c_exp) = torch_lstm(case)(case["x"], (case["h"][None], case["c"][None]))
    for name, mine, want in (("h_T", h_t, h_exp[0]), ("c_T", c_t, c_exp[0]), ("outputs", outputs, out_exp)):
        assert_close(
            mine,
            want.detach(),
            name,
            prop=f"{name} differs from nn.LSTM(batch_first=True)'s",
            inputs=io,
        )


@pytest.mark.exercise("lstm.forward")
@pytest.mark.oracle("library")
@S.edge_examples("case", rnn_edges(*SEQ_SIZES, seq=True))
@given(rnn_case(seq=True))
def test_forward_outputs_are_the_cell_step_by_step(impl, case):
    """outputs[:, t] is h after step t of lstm_cell, the state carried from one step to the next"""
    (outputs, _, _), _, io, _ = _call_forward(impl, case)
    b, t_len, hidden = case["x"].shape[0], case["x"].shape[1], case["h"].shape[1]
    expect_tensor(outputs, "outputs", shape=(b, t_len, hidden), dtype=case["x"].dtype, inputs=io)
    for t, (h, _) in enumerate(_steps(case)):
        hints = (
            []
            if t == 0
            else [
                f"outputs[:, {t - 1}] is right: is the state (h, c) after step {t - 1} the input "
                f"state of step {t}, and is step {t}'s input x[:, {t}]?"
            ]
        )
        assert_close(
            outputs[:, t],
            h,
            f"outputs[:, {t}]",
            prop=f"outputs[:, {t}] is not the h of step {t}",
            inputs=io,
            hints=hints,
        )


@pytest.mark.exercise("lstm.forward")
@pytest.mark.oracle("library")
@S.edge_examples("case", rnn_edges(*SEQ_SIZES, seq=True))
@given(rnn_case(seq=True))
def test_forward_starts_from_initial_state(impl, case):
    """the first step starts from the given (h0, c0), not from zeros"""
    (outputs, _, _), _, io, _ = _call_forward(impl, case)
    b, t_len, hidden = case["x"].shape[0], case["x"].shape[1], case["h"].shape[1]
    expect_tensor(outputs, "outputs", shape=(b, t_len, hidden), dtype=case["x"].dtype, inputs=io)
    h1, _ = lstm_cell_oracle(case["x"][:, 0], case["h"], case["c"], *_weights(case))
    zero = torch.zeros_like(case["h"])
    from_zeros = lstm_cell_oracle(case["x"][:, 0], zero, zero, *_weights(case))[0]
    hints = (
        ["outputs[:, 0] is what zeros as the initial state give: use h0 and c0"]
        if torch.allclose(outputs[:, 0], from_zeros)
        else []
    )
    assert_close(
        outputs[:, 0],
        h1,
        "outputs[:, 0]",
        prop="outputs[:, 0] must be lstm_cell(x[:, 0], h0, c0)'s h",
        inputs=io,
        hints=hints,
    )


@pytest.mark.exercise("lstm.forward")
@pytest.mark.oracle("library")
@S.edge_examples("case", rnn_edges(*SEQ_SIZES, seq=True))
@given(rnn_case(seq=True))
def test_forward_final_state_is_last_step(impl, case):
    """(h_T, c_T) is the state after the last step: h_T equals outputs[:, -1]"""
    (outputs, h_t, c_t), _, io, _ = _call_forward(impl, case)
    h_last, c_last = _steps(case)[-1]
    assert_close(
        h_t,
        h_last,
        "h_T",
        prop="h_T must be the hidden state after the last step",
        inputs=io,
    )
    assert_close(
        c_t,
        c_last,
        "c_T",
        prop="c_T must be the cell state after the last step",
        inputs=io,
    )
    expect_tensor(outputs, "outputs", shape=(*case["x"].shape[:2], h_t.shape[-1]), dtype=h_t.dtype, inputs=io)
    assert_close(outputs[:, -1], h_t, "outputs[:, -1]", prop="outputs[:, -1] must equal h_T", inputs=io)


@S.composite
def causal_case(draw):
    """A sequence case and a step ``t`` in ``[0, T - 2]``."""
    case = draw(rnn_case(seq=True))
    return case, draw(st.integers(0, case["x"].shape[1] - 2))


@pytest.mark.exercise("lstm.forward", kind="property")
@pytest.mark.oracle("library")
# no T = 1 example: causality needs a step before and one after t
@S.edge_examples("drawn", [(case, case["x"].shape[1] - 2) for case in rnn_edges(*STEP_SIZES, seq=True)])
@given(causal_case())
def test_forward_is_causal(impl, drawn):
    """outputs[:, :t+1] do not change when only inputs after step t change"""
    case, t = drawn
    (out1, _, _), _, io, _ = _call_forward(impl, case)
    x2 = case["x"].clone()
    x2[:, t + 1 :] = S.uniform(S.generator(t), *x2[:, t + 1 :].shape, dtype=x2.dtype)
    (out2, _, _), _, _, _ = _call_forward(impl, dict(case, x=x2))
    expect_tensor(out1, "outputs", shape=(*case["x"].shape[:2], case["h"].shape[-1]), dtype=x2.dtype, inputs=io)
    assert_close(
        out2[:, : t + 1],
        out1[:, : t + 1],
        f"outputs[:, :{t + 1}]",
        prop=f"causality: outputs at steps <= {t} changed when only x[:, {t + 1}:] changed",
        inputs=io,
        hints=["run the steps forward in time, t = 0 .. T-1, over axis 1 of x"],
    )


@pytest.mark.exercise("lstm.forward")
@pytest.mark.oracle("library")
@S.edge_examples("case", rnn_edges(*SEQ_SIZES, seq=True))
@given(rnn_case(seq=True))
def test_forward_gradients(impl, case):
    """gradients with respect to x, h0, c0 and all four weights agree with nn.LSTM (through every step)"""
    args = forward_args(case)
    io = _io(FORWARD_NAMES, args)
    b, t_len, hidden = case["x"].shape[0], case["x"].shape[1], case["h"].shape[1]
    cot = cotangents(9, (b, t_len, hidden), (b, hidden), (b, hidden))
    result = impl.invoke(Call("lstm_forward", args, grad_wrt=tuple(range(7)), cotangents=cot))
    oracle = torch_lstm(_float64(case))

    def run(x, h0, c0):
        """``nn.LSTM``'s outputs from ``(h0, c0)``, the state without its layer axis."""
        out, (h_n, c_n) = oracle(x, (h0[None], c0[None]))
        return out, (h_n[0], c_n[0])

    expected = _in_dtype(reference_grads(run, forward_args(_float64(case))[:3], cot, list(oracle.parameters())), case)
    for k, name in enumerate(FORWARD_NAMES):
        assert_grad(result.grads.get(k), expected[k], f"d/d{name}", inputs=io)


@pytest.mark.exercise("lstm.forward", kind="property")
@pytest.mark.oracle("library")
@S.edge_examples("case", rnn_edges(*SEQ_SIZES, seq=True))
@given(rnn_case(seq=True))
def test_forward_keeps_dtype_and_inputs(impl, case):
    """outputs (B, T, H), h_T and c_T (B, H) are in the input's dtype; no input is modified in place"""
    b, t_len, hidden = case["x"].shape[0], case["x"].shape[1], case["h"].shape[1]
    _keeps_dtype_and_inputs(
        impl,
        "lstm_forward",
        forward_args(case),
        FORWARD_NAMES,
        {"outputs": (b, t_len, hidden), "h_T": (b, hidden), "c_T": (b, hidden)},
    )


# ----------------------------------------------------------------------------- lstm.gru


def _call_gru(impl, case):
    args = gru_args(case)
    io = _io(GATES_NAMES, args)
    return impl.invoke(Call("gru_cell", args)).outputs, args, io


def _gru_new_gate_without_hidden(case):
    """tanh(W_in x + b_in): what n is when the reset gate is 0."""
    hidden = case["h"].shape[-1]
    return torch.tanh(case["x"] @ case["W_ih"][2 * hidden :].T + case["b_ih"][2 * hidden :])


@pytest.mark.exercise("lstm.gru", weight=3)
@pytest.mark.oracle("library")
@S.edge_examples("case", rnn_edges(*STEP_SIZES, blocks=3))
@given(rnn_case(blocks=3))
def test_gru_matches_gru_cell(impl, case):
    """h' agrees with torch.nn.GRUCell given the same weights (blocks r, z, n)"""
    h, _, io = _call_gru(impl, case)
    expected = torch_gru_cell(case)(case["x"], case["h"]).detach()
    assert_close(
        h,
        expected,
        "h",
        prop="h' differs from nn.GRUCell's ((1-z)*n + z*h_prev)",
        inputs=io,
    )


@pytest.mark.exercise("lstm.gru", kind="property")
@pytest.mark.oracle("library")
@S.edge_examples("case", rnn_edges(*STEP_SIZES, blocks=3))
@given(rnn_case(blocks=3))
def test_gru_update_gate_one_keeps_state(impl, case):
    """with the update gate z pinned to 1 (through the biases), h' = h_prev: the state passes through"""
    case = _pinned(case, 1, PIN, blocks=3)
    h, _, io = _call_gru(impl, case)
    io += " (biases pin z = 1)"
    assert_close(
        h,
        case["h"],
        "h",
        prop="with z = 1 the GRU must keep its state: h' = h_prev",
        inputs=io,
        hints=["h' = (1-z)*n + z*h_prev"],
    )


@pytest.mark.exercise("lstm.gru")
@pytest.mark.oracle("library")
@S.edge_examples("case", rnn_edges(*STEP_SIZES, blocks=3))
@given(rnn_case(blocks=3))
def test_gru_reset_gate_zero_drops_hidden_term(impl, case):
    """with r pinned to 0 and z to 0, h' = n = tanh(W_in x + b_in): r scales the whole W_hn h + b_hn"""
    case = _pinned(_pinned(case, 0, -PIN, blocks=3), 1, -PIN, blocks=3)
    h, _, io = _call_gru(impl, case)
    io += " (biases pin r = 0, z = 0)"
    assert_close(
        h,
        _gru_new_gate_without_hidden(case),
        "h",
        prop="with r = 0 and z = 0, h' must be tanh(W_in x + b_in): r multiplies (W_hn h_prev + b_hn)",
        inputs=io,
        hints=["n = tanh(W_in x + b_in + r*(W_hn h_prev + b_hn)), as in nn.GRUCell"],
    )


@pytest.mark.exercise("lstm.gru")
@pytest.mark.oracle("library")
@S.edge_examples("case", rnn_edges(*STEP_SIZES, blocks=3))
@given(rnn_case(blocks=3))
def test_gru_gradients(impl, case):
    """gradients with respect to x, h_prev and all four weights agree with nn.GRUCell"""
    args = gru_args(case)
    io = _io(GATES_NAMES, args)
    cot = cotangents(3, case["h"].shape)
    result = impl.invoke(Call("gru_cell", args, grad_wrt=tuple(range(6)), cotangents=cot))
    oracle = torch_gru_cell(_float64(case))
    expected = _in_dtype(reference_grads(oracle, gru_args(_float64(case))[:2], cot, list(oracle.parameters())), case)
    for k, name in enumerate(GATES_NAMES):
        assert_grad(result.grads.get(k), expected[k], f"d/d{name}", inputs=io)


@pytest.mark.exercise("lstm.gru", kind="property")
@pytest.mark.oracle("library")
@S.edge_examples("case", rnn_edges(*STEP_SIZES, blocks=3))
@given(rnn_case(blocks=3))
def test_gru_keeps_dtype_and_inputs(impl, case):
    """h' is (B, H) in the input's dtype; no input is modified in place"""
    _keeps_dtype_and_inputs(impl, "gru_cell", gru_args(case), GATES_NAMES, {"h": case["h"].shape})


# ----------------------------------------------------------------------------- lstm.param_count

#: (input_size, hidden_size, bias): the sizes differ, so that I and H cannot be swapped unseen.
sizes = st.tuples(S.distinct_sizes(2, lo=2, hi=300), st.booleans()).map(lambda d: (*d[0], d[1]))


def _torch_count(cls, input_size, hidden_size, bias):
    return sum(p.numel() for p in cls(input_size, hidden_size, bias=bias, device="meta").parameters())


@pytest.mark.exercise("lstm.param_count", weight=2)
@pytest.mark.oracle("library")
@pytest.mark.parametrize("name, oracle", [("lstm_param_count", torch.nn.LSTM), ("gru_param_count", torch.nn.GRU)])
# I = 1 and H = 1, with and without the biases
@S.edge_examples("drawn", [(5, 1, False), (7, 1, True), (1, 5, True), (1, 7, False)])
@given(drawn=sizes)
def test_param_count_matches_nn_module(impl, name, oracle, drawn):
    """the count is the int sum(p.numel()) of nn.LSTM / nn.GRU(I, H, bias=bias)"""
    input_size, hidden_size, bias = drawn
    got = impl.call(name, input_size, hidden_size, bias=bias)
    expect_int(
        got,
        _torch_count(oracle, *drawn),
        "count",
        prop=f"{name} differs from the parameters of nn.{oracle.__name__} (an exact int)",
        inputs=describe(input_size=input_size, hidden_size=hidden_size, bias=bias),
    )


@pytest.mark.exercise("lstm.param_count", kind="property")
@pytest.mark.oracle("library")
@S.edge_examples("drawn", [(5, 1, False), (1, 5, True)])
@given(sizes)
def test_gru_needs_fewer_params_than_lstm(impl, drawn):
    """a GRU needs fewer parameters than an LSTM of the same sizes (3 blocks instead of 4)"""
    input_size, hidden_size, bias = drawn
    io = describe(input_size=input_size, hidden_size=hidden_size, bias=bias)
    lstm = impl.call("lstm_param_count", input_size, hidden_size, bias=bias)
    gru = impl.call("gru_param_count", input_size, hidden_size, bias=bias)
    for name, value in (("lstm_param_count", lstm), ("gru_param_count", gru)):
        if type(value) is not int:
            fail(f"{name} must return an exact int", [f"yours: {value!r} ({type(value).__name__})"], io, [INT_HINT])
    if not gru < lstm:
        fail(
            "gru_param_count must be smaller than lstm_param_count for the same sizes",
            [f"yours: GRU {gru}, LSTM {lstm}"],
            io,
            ["an LSTM has 4 blocks (i, f, g, o), a GRU 3 (r, z, n), each with W_ih, W_hh and two biases"],
        )


# ----------------------------------------------------------------------------- devices (cpu, meta, cuda)


def _rnn_device_case(g, blocks, seq=False):
    b, i, h, t = 2, 3, 4, 5
    x = S.uniform(g, b, t, i) if seq else S.uniform(g, b, i)
    weights = (
        S.uniform(g, blocks * h, i, scale=0.5),
        S.uniform(g, blocks * h, h, scale=0.5),
        S.uniform(g, blocks * h, scale=0.5),
        S.uniform(g, blocks * h, scale=0.5),
    )
    state = (S.uniform(g, b, h),) if blocks == 3 else (S.uniform(g, b, h), S.uniform(g, b, h, scale=2.0))
    return (x, *state, *weights), {}


def _gates_device_case(g):
    x, h, _, *weights = _rnn_device_case(g, 4)[0]
    return (x, h, *weights), {}


DEVICE_CASES = [
    DeviceCase("lstm.gates", "lstm_gates", _gates_device_case, GATES, oracle=lstm_gates_oracle),
    DeviceCase("lstm.cell", "lstm_cell", lambda g: _rnn_device_case(g, 4), ("h", "c"), oracle=lstm_cell_oracle),
    DeviceCase(
        "lstm.forward",
        "lstm_forward",
        lambda g: _rnn_device_case(g, 4, seq=True),
        ("outputs", "h_T", "c_T"),
        oracle=lstm_forward_oracle,
    ),
    DeviceCase("lstm.gru", "gru_cell", lambda g: _rnn_device_case(g, 3), ("h",), oracle=gru_cell_oracle),
]
test_devices = device_tests(__name__, DEVICE_CASES)
