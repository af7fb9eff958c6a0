"""Module `lstm`: the recurrent cells of the RNN lecture (DL Basic, lecture 7).

Conventions (see the exercise contract):

* weights use PyTorch's layout, so that ``nn.LSTMCell``, ``nn.LSTM`` and ``nn.GRUCell``
  holding the same tensors compute the same thing: ``W_ih (4H, I)``, ``W_hh (4H, H)``,
  ``b_ih (4H,)``, ``b_hh (4H,)``; the ``4H`` rows are four blocks of ``H`` rows, in the
  gate order input ``i``, forget ``f``, cell candidate ``g``, output ``o`` (block ``k``
  is rows ``k*H:(k+1)*H``).  A GRU has ``3H`` rows: reset ``r``, update ``z``, new ``n``;
* a weight maps a row vector as ``x @ W.T`` (like ``nn.Linear``);
* batch-first: one step's input is ``x (B, I)``, a sequence is ``x (B, T, I)`` (time is
  axis 1), the states ``h`` and ``c`` are ``(B, H)``;
* every function keeps the input's dtype and device, keeps autograd working and never
  modifies its inputs in place;
* do not call ``nn.LSTM``, ``nn.LSTMCell``, ``nn.GRU`` or ``nn.GRUCell`` (nor their
  kernels): matmuls, ``torch.sigmoid``, ``torch.tanh``, ``chunk`` and ``torch.stack``
  are the building blocks.
"""

import torch


def lstm_gates(x, h_prev, W_ih, W_hh, b_ih, b_hh):
    """The four gates of an LSTM step.  Exercise ``lstm.gates``.

    The pre-activations ``a = x W_ih^T + b_ih + h_prev W_hh^T + b_hh`` are ``(B, 4H)``;
    their four blocks of ``H`` columns are, in this order::

        i = sigmoid(a[:, 0H:1H])    input gate       in (0, 1)
        f = sigmoid(a[:, 1H:2H])    forget gate      in (0, 1)
        g = tanh(a[:, 2H:3H])       cell candidate   in (-1, 1)
        o = sigmoid(a[:, 3H:4H])    output gate      in (0, 1)

    Args:
        x: the step's input, ``(B, I)``.
        h_prev: the previous hidden state, ``(B, H)``.
        W_ih: ``(4H, I)``; W_hh: ``(4H, H)``; b_ih, b_hh: ``(4H,)`` (PyTorch's layout).

    Returns:
        ``(i, f, g, o)``, each ``(B, H)``.
    """
    ### BEGIN SOLUTION
    gates = x @ W_ih.T + b_ih + h_prev @ W_hh.T + b_hh
    i, f, g, o = gates.chunk(4, dim=-1)
    return torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
    ### END SOLUTION


def lstm_cell(x, h_prev, c_prev, W_ih, W_hh, b_ih, b_hh):
    """One LSTM step, like ``nn.LSTMCell``.  Exercise ``lstm.cell``.

    With ``(i, f, g, o) = lstm_gates(x, h_prev, W_ih, W_hh, b_ih, b_hh)``::

        c = f*c_prev + i*g      forget part of the old cell, write part of the candidate
        h = o*tanh(c)           expose part of the NEW cell (so |h| < 1)

    Args:
        x: ``(B, I)``; h_prev, c_prev: ``(B, H)``; weights as in ``lstm_gates``.

    Returns:
        ``(h, c)``, each ``(B, H)``: the hidden state first, then the cell state.
    """
    ### BEGIN SOLUTION
    i, f, g, o = lstm_gates(x, h_prev, W_ih, W_hh, b_ih, b_hh)
    c = f * c_prev + i * g
    h = o * torch.tanh(c)
    return h, c
    ### END SOLUTION


def lstm_forward(x, h0, c0, W_ih, W_hh, b_ih, b_hh):
    """An LSTM over a whole sequence, like ``nn.LSTM(batch_first=True)``.
    Exercise ``lstm.forward``.

    Starting from the state ``(h0, c0)``, step ``t = 0 .. T-1`` applies ``lstm_cell`` to
    the input of time step ``t`` and the state left by step ``t-1``, with the same weights
    at every step::

        (h_t, c_t) = lstm_cell(x_t, h_{t-1}, c_{t-1}, W_ih, W_hh, b_ih, b_hh)

    Args:
        x: the sequence, batch-first ``(B, T, I)`` (time is axis 1).
        h0, c0: the initial states, ``(B, H)``.
        W_ih, W_hh, b_ih, b_hh: as in ``lstm_gates``.

    Returns:
        ``(outputs, (h_T, c_T))``: ``outputs`` is ``(B, T, H)`` with ``outputs[:, t]`` the
        hidden state after step ``t``; ``h_T`` and ``c_T`` (each ``(B, H)``) are the states
        after the last step (so ``h_T`` equals ``outputs[:, -1]``).
    """
    ### BEGIN SOLUTION
    h, c = h0, c0
    outputs = []
    for t in range(x.size(1)):
        h, c = lstm_cell(x[:, t], h, c, W_ih, W_hh, b_ih, b_hh)
        outputs.append(h)
    return torch.stack(outputs, dim=1), (h, c)
    ### END SOLUTION


def gru_cell(x, h_prev, W_ih, W_hh, b_ih, b_hh):
    """One GRU step, like ``nn.GRUCell``.  Exercise ``lstm.gru``.

    ``W_ih (3H, I)``, ``W_hh (3H, H)``, ``b_ih (3H,)``, ``b_hh (3H,)`` hold three blocks
    of ``H`` rows in the order reset ``r``, update ``z``, new ``n``::

        r  = sigmoid(W_ir x + b_ir + W_hr h_prev + b_hr)
        z  = sigmoid(W_iz x + b_iz + W_hz h_prev + b_hz)
        n  = tanh(W_in x + b_in + r*(W_hn h_prev + b_hn))   r scales the whole hidden term
        h' = (1-z)*n + z*h_prev                              z = 1 keeps the old state

    A GRU has no cell state: ``h'`` is both its output and its next state.

    Args:
        x: ``(B, I)``; h_prev: ``(B, H)``; weights as above (PyTorch's layout).

    Returns:
        ``h'``, ``(B, H)``.
    """
    ### BEGIN SOLUTION
    gi = x @ W_ih.T + b_ih
    gh = h_prev @ W_hh.T + b_hh
    i_r, i_z, i_n = gi.chunk(3, dim=-1)
    h_r, h_z, h_n = gh.chunk(3, dim=-1)
    r = torch.sigmoid(i_r + h_r)
    z = torch.sigmoid(i_z + h_z)
    n = torch.tanh(i_n + r * h_n)
    return (1 - z) * n + z * h_prev
    ### END SOLUTION


def lstm_param_count(input_size, hidden_size, bias=True):
    """How many parameters ``nn.LSTM(input_size, hidden_size, bias=bias)`` has (one
    layer).  Exercise ``lstm.param_count``.

    Four blocks (i, f, g, o), each with its own input weights ``(H, I)``, hidden weights
    ``(H, H)`` and, when ``bias``, two bias vectors ``b_ih`` and ``b_hh`` of ``H``.

    Returns:
        an exact Python ``int``.
    """
    ### BEGIN SOLUTION
    weights = 4 * hidden_size * (input_size + hidden_size)  # W_ih (4H, I) and W_hh (4H, H)
    biases = 2 * 4 * hidden_size if bias else 0  # b_ih and b_hh, (4H,) each
    return weights + biases
    ### END SOLUTION


def gru_param_count(input_size, hidden_size, bias=True):
    """How many parameters ``nn.GRU(input_size, hidden_size, bias=bias)`` has (one
    layer).  Exercise ``lstm.param_count``.

    Three blocks (r, z, n) instead of the LSTM's four: a GRU needs fewer parameters for
    the same sizes.

    Returns:
        an exact Python ``int``.
    """
    ### BEGIN SOLUTION
    weights = 3 * hidden_size * (input_size + hidden_size)  # W_ih (3H, I) and W_hh (3H, H)
    biases = 2 * 3 * hidden_size if bias else 0  # b_ih and b_hh, (3H,) each
    return weights + biases
    ### END SOLUTION
