"""The forbidden-call check (issue #10, item 7): a guard that holds.

Three layers, fastest first: the static check (:mod:`grader.execution.static_check`) on small
snippets; the runtime trip-wire (:mod:`grader.execution.guards`) through ``calls.run_call`` in
this process; and the red team: submissions that reach a forbidden implementation by each
route the issue names, graded through the real path (one ``grade_many`` run, one worker
each), must score 0 on the attacked exercise with feedback naming the forbidden call,
while the reference and solutions built from allowed building blocks keep full marks.
"""

import textwrap
import time

import pytest
import torch
import torch.distributions.kl as torch_kl
import torch.nn.functional as F

from grader import ROOT, mistakes, rubric
from grader.adapters import open_implementation
from grader.execution import calls
from grader.execution.static_check import check_source, describe, plain_findings
from grader.grading import runner
from grader.outcomes import ForbiddenCall

SOLUTIONS = {m: (ROOT / "solutions" / f"{m}.py").read_text() for m in rubric.MODULES}
NAMES = {m: [n for ex in rubric.exercises_of(m) for n in ex.names] for m in rubric.MODULES}
HEAD = "import math\nimport torch\nimport torch.nn.functional as F\nfrom torch import nn\n"


def _replace(module, name, code, source=None):
    """The reference ``module`` (or ``source``) with top-level function or class ``name``
    replaced by ``code``."""
    source = SOLUTIONS[module] if source is None else source
    start = source.index(f"\ndef {name}(") if f"\ndef {name}(" in source else source.index(f"\nclass {name}(")
    nxt = [i for i in (source.find("\ndef ", start + 1), source.find("\nclass ", start + 1)) if i != -1]
    end = min(nxt) if nxt else len(source)
    return source[:start] + "\n" + textwrap.dedent(code).strip("\n") + "\n\n" + source[end:]


def _flags(source, module):
    return check_source(source, NAMES[module])


def _code(text):
    return textwrap.dedent(text).lstrip("\n")


#: Public names of the reference that call another one (and so reach what it reaches).
CALLERS = {"scaled_dot_product_attention": {"MultiHeadAttention"}, "lstm_cell": {"lstm_forward"}}


# -- attacks: (module, exercise, the replaced name, code, what the feedback must name) --------------------------
MHA_VIA_MHA_FORWARD = """
class MultiHeadAttention(nn.Module):
    def __init__(self, embed_dim, num_heads, bias=True):
        super().__init__()
        if embed_dim % num_heads != 0:
            raise ValueError(f"embed_dim ({embed_dim}) must be divisible by num_heads ({num_heads})")
        self.embed_dim, self.num_heads, self.bias = embed_dim, num_heads, bias
        self.q_proj = nn.Linear(embed_dim, embed_dim, bias=bias)
        self.k_proj = nn.Linear(embed_dim, embed_dim, bias=bias)
        self.v_proj = nn.Linear(embed_dim, embed_dim, bias=bias)
        self.out_proj = nn.Linear(embed_dim, embed_dim, bias=bias)

    def forward(self, query, key, value, mask=None):
        import torch.nn.functional as F
        B, Lq, Lk = query.size(0), query.size(1), key.size(1)
        attn_mask = None
        if mask is not None:
            attn_mask = ~mask.expand(B, self.num_heads, Lq, Lk).reshape(B * self.num_heads, Lq, Lk)
        in_bias = torch.cat([self.q_proj.bias, self.k_proj.bias, self.v_proj.bias]) if self.bias else None
        with SWITCH:
            out, weights = F.multi_head_attention_forward(
                query.transpose(0, 1), key.transpose(0, 1), value.transpose(0, 1), self.embed_dim, self.num_heads,
                None, in_bias, None, None, False, 0.0, self.out_proj.weight, self.out_proj.bias, training=False,
                need_weights=True, attn_mask=attn_mask, use_separate_proj_weight=True,
                q_proj_weight=self.q_proj.weight, k_proj_weight=self.k_proj.weight,
                v_proj_weight=self.v_proj.weight, average_attn_weights=False)
        return out.transpose(0, 1), weights
"""
SDPA_WEIGHTS = """
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf")).masked_fill(~mask.any(-1, keepdim=True), 0.0)
    weights = torch.softmax(scores, dim=-1)
    if mask is not None:
        weights = weights.masked_fill(~mask, 0.0)
"""


def _sdpa(out, prefix=""):
    """An sdpa whose weights are written out and whose output comes from ``out`` (code that sets ``out``)."""
    return (
        prefix
        + "\ndef scaled_dot_product_attention(q, k, v, mask=None):\n"
        + SDPA_WEIGHTS
        + textwrap.indent(textwrap.dedent(out).strip("\n"), "    ")
        + "\n    return out, weights\n"
    )


ATTACKS = {
    "mha_disable_torch_function": (
        "attention",
        "attention.mha",
        "MultiHeadAttention",
        MHA_VIA_MHA_FORWARD.replace("SWITCH", "torch._C.DisableTorchFunction()"),
        "torch.nn.functional.multi_head_attention_forward",
    ),
    "mha_pop_mode_temporarily": (
        "attention",
        "attention.mha",
        "MultiHeadAttention",
        MHA_VIA_MHA_FORWARD.replace("SWITCH", "torch.overrides._pop_mode_temporarily()"),
        "torch.nn.functional.multi_head_attention_forward",
    ),
    "sdpa_pop_mode_temporarily": (
        "attention",
        "attention.sdpa",
        "scaled_dot_product_attention",
        _sdpa("""
            from torch.overrides import _pop_mode_temporarily
            with _pop_mode_temporarily():
                out = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        """),
        "torch.nn.functional.scaled_dot_product_attention",
    ),
    "sdpa_alias_at_module_level": (
        "attention",
        "attention.sdpa",
        "scaled_dot_product_attention",
        _sdpa(
            "out = attend(q, k, v, attn_mask=mask)",
            "from torch.nn.functional import scaled_dot_product_attention as attend\n",
        ),
        "torch.nn.functional.scaled_dot_product_attention",
    ),
    "sdpa_F_is_torch_nn_functional": (
        "attention",
        "attention.sdpa",
        "scaled_dot_product_attention",
        _sdpa("out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)", "F = torch.nn.functional\n"),
        "torch.nn.functional.scaled_dot_product_attention",
    ),
    "sdpa_through_a_helper": (
        "attention",
        "attention.sdpa",
        "scaled_dot_product_attention",
        "def _attend(q, k, v, mask):\n    return torch.nn.functional.scaled_dot_product_attention("
        "q, k, v, attn_mask=mask)\n\n\ndef _helper(q, k, v, mask):\n    return _attend(q, k, v, mask)\n\n"
        + _sdpa("out = _helper(q, k, v, mask)"),
        "torch.nn.functional.scaled_dot_product_attention",
    ),
    "kl_private_kl_normal_normal": (
        "elbo",
        "elbo.kl",
        "gaussian_kl",
        """
        def gaussian_kl(mu_q, logvar_q, mu_p, logvar_p):
            q = torch.distributions.Normal(mu_q, torch.exp(0.5 * logvar_q))
            p = torch.distributions.Normal(mu_p, torch.exp(0.5 * logvar_p))
            return torch.distributions.kl._kl_normal_normal(q, p).sum(dim=-1)
        """,
        "torch.distributions.kl._kl_normal_normal",
    ),
    "kl_private_dispatch_kl": (
        "elbo",
        "elbo.kl",
        "gaussian_kl",
        """
        def gaussian_kl(mu_q, logvar_q, mu_p, logvar_p):
            from torch.distributions import Normal, kl
            q, p = Normal(mu_q, torch.exp(0.5 * logvar_q)), Normal(mu_p, torch.exp(0.5 * logvar_p))
            return kl._dispatch_kl(Normal, Normal)(q, p).sum(dim=-1)
        """,
        "torch.distributions.kl._dispatch_kl",
    ),
    "lstm_cell_builds_nn_lstmcell": (
        "lstm",
        "lstm.cell",
        "lstm_cell",
        """
        def lstm_cell(x, h_prev, c_prev, W_ih, W_hh, b_ih, b_hh):
            cell = torch.nn.LSTMCell(W_ih.shape[1], W_hh.shape[1], dtype=x.dtype, device=x.device)
            with torch.no_grad():
                for name, value in (("weight_ih", W_ih), ("weight_hh", W_hh), ("bias_ih", b_ih), ("bias_hh", b_hh)):
                    getattr(cell, name).copy_(value)
            return cell(x, (h_prev, c_prev))
        """,
        "torch.nn.LSTMCell",
    ),
}
#: Which exercise of the same submission must keep full marks (only some: full exercises cost time).
CONTROL = {
    "sdpa_alias_at_module_level": "attention.causal_mask",
    "kl_private_dispatch_kl": "elbo.reparameterize",
    "lstm_cell_builds_nn_lstmcell": "lstm.param_count",
}

#: Solutions written with the allowed building blocks (torch.softmax, Normal(...).log_prob,
#: torch.sigmoid/tanh, nn.Linear): full marks.  (module, exercise, replaced name, code)
ALLOWED = (
    (
        "elbo",
        "elbo.gaussian_ll",
        "gaussian_log_likelihood",
        """
        def gaussian_log_likelihood(x, mean, logvar):
            # validate_args=False: argument validation calls .item(), which meta tensors (device tests) refuse
            std = torch.exp(0.5 * logvar)
            return torch.distributions.Normal(mean, std, validate_args=False).log_prob(x).sum(dim=-1)
        """,
    ),
    (
        "lstm",
        "lstm.gru",
        "gru_cell",
        """
        def gru_cell(x, h_prev, W_ih, W_hh, b_ih, b_hh):
            H = h_prev.size(-1)
            gi = torch.nn.functional.linear(x, W_ih, b_ih)
            gh = torch.nn.functional.linear(h_prev, W_hh, b_hh)
            r = torch.sigmoid(gi[:, :H] + gh[:, :H])
            z = torch.sigmoid(gi[:, H:2 * H] + gh[:, H:2 * H])
            n = torch.tanh(gi[:, 2 * H:] + r * gh[:, 2 * H:])
            return n + z * (h_prev - n)
        """,
    ),
)


# -- the static check -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_static_check_flags_every_route_of_the_issue(attack):
    module, exercise, name, code, what = ATTACKS[attack]
    found = _flags(_replace(module, name, code), module)
    assert name in found, attack
    assert what in describe(name, found[name][0])
    others = set(found) - set(rubric.BY_ID[exercise].names) - CALLERS.get(name, set())
    assert not others, f"{attack} also flagged {others}"


SNIPPETS = {
    # name: (source, public name, kind, text the finding must show)
    "import_as": (
        _code("""
        from torch.nn.functional import scaled_dot_product_attention as f
        def g(q):
            return f(q, q, q)
        """),
        "g",
        "forbidden",
        "torch.nn.functional.scaled_dot_product_attention",
    ),
    "from_torch_import_nn": (
        _code("""
        from torch import nn
        def g(x):
            return nn.LSTM(3, 4)(x)
        """),
        "g",
        "forbidden",
        "torch.nn.LSTM",
    ),
    "local_alias": (
        _code("""
        import torch
        def g(q):
            G = torch.nn.functional
            h = G.scaled_dot_product_attention
            return h(q, q, q)
        """),
        "g",
        "forbidden",
        "scaled_dot_product_attention (line 4)",
    ),
    "parameter_default": (
        _code("""
        import torch
        def g(q, G=torch.nn.functional):
            return G.scaled_dot_product_attention(q)
        """),
        "g",
        "forbidden",
        "torch.nn.functional.scaled_dot_product_attention",
    ),
    "getattr_constant": (
        _code("""
        import torch
        def g(q):
            return getattr(torch.nn.functional, "multi_head_attention_forward")(q)
        """),
        "g",
        "forbidden",
        "multi_head_attention_forward",
    ),
    "bound_at_import": (
        _code("""
        import functools, torch
        _a = functools.partial(torch.nn.functional.scaled_dot_product_attention)
        def g(q):
            return _a(q, q, q)
        """),
        "g",
        "forbidden",
        "line 2, in _a",
    ),
    "global_statement": (
        _code("""
        import torch
        def _s():
            global A
            A = torch.lstm_cell
        _s()
        def g(x):
            return A(x)
        """),
        "g",
        "forbidden",
        "torch.lstm_cell",
    ),
    "patched_torch": (
        _code("""
        import torch
        torch.sigmoid = torch.gru_cell
        def g(x):
            return torch.sigmoid(x)
        """),
        "g",
        "forbidden",
        "torch.gru_cell",
    ),
    "patched_method": (
        _code("""
        import torch
        class M(torch.nn.Module):
            def forward(self, x):
                return x
        def _f(self, x):
            return torch.nn.functional.multi_head_attention_forward(x)
        M.forward = _f
        """),
        "M",
        "forbidden",
        "multi_head_attention_forward",
    ),
    "unresolved_object": (
        _code("""
        import torch
        def g(q):
            mods = [torch.nn.functional]
            return mods[0].scaled_dot_product_attention(q)
        """),
        "g",
        "forbidden",
        "mods[0].scaled_dot_product_attention",
    ),
    "private_kernel": (
        _code("""
        import torch
        def g(x, h):
            return torch._VF.gru_cell(x, h)
        """),
        "g",
        "forbidden",
        "torch._VF.gru_cell",
    ),
    "aten_op": (
        _code("""
        import torch
        def g(x):
            return torch.ops.aten.lstm_cell.default(x)
        """),
        "g",
        "forbidden",
        "torch.ops.aten.lstm_cell.default",
    ),
    "kl_registry": (
        _code("""
        from torch.distributions import kl, Normal
        def g(p):
            return kl._KL_REGISTRY[Normal, Normal](p, p)
        """),
        "g",
        "forbidden",
        "torch.distributions.kl._KL_REGISTRY",
    ),
    "kl_divergence": (
        _code("""
        from torch.distributions import kl_divergence as kl
        def g(p, q):
            return kl(p, q)
        """),
        "g",
        "forbidden",
        "torch.distributions.kl_divergence",
    ),
    "transformer": (
        _code("""
        import torch
        class M(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.a = torch.nn.TransformerEncoderLayer(8, 2).self_attn
        """),
        "M",
        "forbidden",
        "torch.nn.TransformerEncoderLayer",
    ),
    "import_after_def": (
        _code("""
        import torch
        def gru_cell(x, h):
            return x
        from torch import *
        """),
        "gru_cell",
        "forbidden",
        "torch.gru_cell",
    ),
    "disable_torch_function": (
        _code("""
        import torch
        def g(x):
            with torch._C.DisableTorchFunction():
                return x
        """),
        "g",
        "guard",
        "torch._C.DisableTorchFunction",
    ),
    "torch_function_state": (
        _code("""
        import torch
        def g(x):
            torch._C._set_torch_function_state(0)
        """),
        "g",
        "guard",
        "_set_torch_function_state",
    ),
    "overrides": (
        _code("""
        from torch.overrides import _pop_mode
        def g(x):
            _pop_mode()
        """),
        "g",
        "guard",
        "torch.overrides._pop_mode",
    ),
    "private_torch": (
        _code("""
        import torch
        def g(x):
            return torch._C._nn.softplus(x)
        """),
        "g",
        "private",
        "torch._C._nn",
    ),
    "getattr_computed": (
        _code("""
        import torch
        def g(x, n):
            return getattr(torch, "sig" + n)(x)
        """),
        "g",
        "dynamic",
        "getattr with a computed name",
    ),
    "dunder_dict": (
        _code("""
        import torch
        def g(x):
            return torch.nn.functional.__dict__["softmax"](x)
        """),
        "g",
        "dynamic",
        "__dict__",
    ),
    "importlib": (
        _code("""
        import importlib
        def g(x):
            return importlib.import_module("torch").tanh(x)
        """),
        "g",
        "dynamic",
        "importlib.import_module",
    ),
    "dunder_import": (
        _code("""
        def g(x):
            return __import__("torch").tanh(x)
        """),
        "g",
        "dynamic",
        "__import__",
    ),
    "eval": (
        _code("""
        def g(x):
            return eval("x")
        """),
        "g",
        "dynamic",
        "eval",
    ),
    "getattr_as_value": (
        _code("""
        import functools, torch
        def g(x):
            return functools.reduce(getattr, ["nn", "functional"], torch).softmax(x)
        """),
        "g",
        "dynamic",
        "getattr used as a value",
    ),
    "frames": (
        _code("""
        import sys
        def g(x):
            return sys._getframe().f_back.f_locals["expected"]
        """),
        "g",
        "dynamic",
        "sys._getframe",
    ),
    "exec_at_import": (
        _code("""
        exec("def g(x): return x")
        def h(x):
            return x
        """),
        "h",
        "dynamic",
        "exec, line 1, in code that runs at import",
    ),
    "grader_at_import": (
        _code("""
        import grader.execution.guards
        grader.execution.guards.forbid_library_solutions = None
        def h(x):
            return x
        """),
        "h",
        "grader",
        "grader.execution.guards.forbid_library_solutions",
    ),
}


@pytest.mark.parametrize("snippet", sorted(SNIPPETS))
def test_static_check_follows_aliases_chains_and_module_level_code(snippet):
    source, name, kind, text = SNIPPETS[snippet]
    found = check_source(source, [name])
    assert name in found, snippet
    assert found[name][0]["kind"] == kind, found[name]
    assert any(text in describe(name, f) for f in found[name]), [describe(name, f) for f in found[name]]


CLEAN = {
    "softmax_and_linear": _code("""
        import torch
        from torch import nn
        class M(nn.Module):
            def __init__(self):
                super().__init__()
                self.p = nn.Linear(4, 4)
            def forward(self, x):
                return torch.softmax(self.p(x), -1)
        """),
    "normal_log_prob": _code("""
        import torch
        def g(x, m, s):
            return torch.distributions.Normal(m, s).log_prob(x).sum(-1)
        """),
    "getattr_on_self": _code("""
        import torch
        class M(torch.nn.Module):
            def forward(self, x):
                return [getattr(self, n + "_proj")(x) for n in "qkv"]
        """),
    "main_block": _code("""
        import torch
        import torch.nn.functional as F
        def g(q):
            return torch.softmax(q, -1)
        if __name__ == "__main__":
            print(F.scaled_dot_product_attention(g, g, g))
        """),
    "sanity_check_at_import": _code("""
        import torch
        import torch.nn.functional as F
        def g(q):
            return torch.softmax(q, -1)
        q = torch.randn(2, 3)
        assert torch.allclose(g(q), F.softmax(q, -1))
        F.scaled_dot_product_attention(q, q, q)
        """),
    "own_names_like_torch": _code("""
        import torch
        def lstm_cell(x):
            return torch.tanh(x)
        def lstm_forward(x):
            return lstm_cell(x)
        def gru_cell(x):
            return lstm_cell(x)
        """),
    "static_method_of_own_class": _code("""
        import torch
        class M(torch.nn.Module):
            @staticmethod
            def scaled_dot_product_attention(q, k, v):
                return torch.softmax(q @ k.T, -1) @ v
            def forward(self, q):
                return M.scaled_dot_product_attention(q, q, q)
        """),
    "reduce_and_comments": _code("""
        import functools, operator
        # torch.nn.functional.scaled_dot_product_attention
        def g(cards):
            'not F.scaled_dot_product_attention: a docstring'
            return functools.reduce(operator.mul, cards, 1) - 1
        """),
    "unused_helper": _code("""
        import torch
        def _check(q):
            return torch.nn.functional.scaled_dot_product_attention(q, q, q)
        def g(q):
            return torch.softmax(q, -1)
        """),
}


@pytest.mark.parametrize("snippet", sorted(CLEAN))
def test_static_check_keeps_allowed_code(snippet):
    names = ["g", "M", "lstm_forward", "gru_cell"]
    assert check_source(CLEAN[snippet], names) == {}


def test_static_check_keeps_the_reference_the_stubs_and_every_catalog_entry():
    for module in rubric.MODULES:
        assert _flags(SOLUTIONS[module], module) == {}
        assert _flags((ROOT / "assignments" / f"{module}.py").read_text(), module) == {}
        for entry in mistakes.load(module) + mistakes.trivial(module):
            assert _flags(entry.source(), module) == {}, f"{module}:{entry.id}"
    for module, _, name, code in ALLOWED:
        assert _flags(_replace(module, name, code), module) == {}


HOSTILE_SOURCES = {
    "syntax_error": ("def f(:\n", "none"),
    "null_bytes": ("x = 1\x00\n", "none"),
    "deep_expression": ("x = " + "a+" * 200_000 + "a\n", "unreadable"),
    "deep_attribute_chain": ("x = a" + ".b" * 5_000 + "\n", "unreadable"),
    "long_alias_chain": (
        "".join(f"a{i} = a{i + 1}\n" for i in range(3_000)) + "def g(x):\n    return a0(x)\n",
        "unreadable",
    ),
    "many_functions": (
        "".join(f"def f{i}(x):\n    return f{i + 1}(x)\n" for i in range(5_000)) + "def g(x):\n    return f0(x)\n",
        "none",
    ),
}


@pytest.mark.parametrize("case", sorted(HOSTILE_SOURCES))
def test_static_check_gives_a_clean_answer_on_hostile_input(case):
    source, expected = HOSTILE_SOURCES[case]
    start = time.monotonic()
    found = check_source(source, ["g", "f"])
    assert time.monotonic() - start < 10
    if expected == "none":
        assert found == {}
    else:  # fails closed: every name flagged, never a crash
        assert set(found) == {"g", "f"} and all(f[0]["kind"] == expected for f in found.values())


def test_a_check_reply_from_the_worker_is_validated():
    good = {"g": [{"kind": "forbidden", "what": "torch.lstm", "line": 3, "via": ""}]}
    assert plain_findings(good, ["g"]) == good
    for bad in (
        [],
        {"h": good["g"]},
        {"g": []},
        {"g": [{"kind": "nope", "what": "", "line": 1, "via": ""}]},
        {"g": [{"kind": "forbidden", "what": "x", "line": "3", "via": ""}]},
    ):
        with pytest.raises(ValueError):
            plain_findings(bad, ["g"])


# -- the runtime trip-wire --------------------------------------------------------------------------------------------
RUNTIME = {
    # name: (body of f(q), run under the guard; what the message names)
    "disable_torch_function": (
        """
        with torch._C.DisableTorchFunction():
            return F.scaled_dot_product_attention(q, q, q)
        """,
        "torch._C.DisableTorchFunction",
    ),
    "saved_switch": (
        """
        with SWITCH():
            return F.scaled_dot_product_attention(q, q, q)
        """,
        "torch.nn.functional.scaled_dot_product_attention",
    ),
    "pop_mode_temporarily": (
        """
        with torch.overrides._pop_mode_temporarily():
            return F.scaled_dot_product_attention(q, q, q)
        """,
        "_pop_mode_temporarily",
    ),
    "pop_the_stack_for_good": (
        """
        POP()
        return q
        """,
        "removed the grader's torch function mode",
    ),
    "switch_state_off": (
        """
        STATE(torch._C._TorchFunctionState.ALL_DISABLED)
        return q
        """,
        "switched off",
    ),
    "kl_normal_normal": (
        """
        n = torch.distributions.Normal(q, 1.0)
        return torch.distributions.kl._kl_normal_normal(n, n)
        """,
        "torch.distributions.kl._kl_normal_normal",
    ),
    "kl_registry": (
        """
        n = torch.distributions.Normal(q, 1.0)
        return torch.distributions.kl._KL_REGISTRY[type(n), type(n)](n, n)
        """,
        "kl_divergence",
    ),
    "kl_exponential_family": (
        """
        n = torch.distributions.Normal(q, 1.0)
        return torch.distributions.kl._kl_expfamily_expfamily(n, n)
        """,
        "_kl_expfamily_expfamily",
    ),
    "lstm_cell_module": (
        """
        return torch.nn.LSTMCell(4, 3)(q[0])
        """,
        "torch.nn.LSTMCell",
    ),
    "gru_kernel": (
        """
        return torch._C._VariableFunctions.gru_cell(q[0], q[0], q.new_ones(12, 4), q.new_ones(12, 4))
        """,
        "torch.nn.GRUCell",
    ),
    "aten_overload": (
        """
        return torch.ops.aten.scaled_dot_product_attention.default(q, q, q)
        """,
        "scaled_dot_product_attention",
    ),
    "caught_then_other_error": (
        """
        try:
            torch.lstm_cell(q, (q, q), q, q)
        except Exception:
            pass
        raise ValueError("not me")
        """,
        "torch.nn.LSTMCell",
    ),
}


def _load(body, tmp_path, name="runtime"):
    path = tmp_path / f"{name}.py"
    source = HEAD + "\ndef f(q):\n" + textwrap.indent(_code(body), "    ")
    path.write_text(source)
    mod = calls.load_module_source(source, str(path), name)
    mod.SWITCH = torch._C.DisableTorchFunction  # grabbed before the call: the trap does not see it
    mod.POP, mod.STATE = torch._C._pop_torch_function_stack, torch._C._set_torch_function_state
    return mod, path


@pytest.mark.parametrize("route", sorted(RUNTIME))
def test_runtime_trip_wire_catches_routes_that_switch_the_mode_off(route, tmp_path):
    body, what = RUNTIME[route]
    mod, path = _load(body, tmp_path, f"runtime_{route}")
    q = torch.randn(2, 3, 4)
    with pytest.raises(ForbiddenCall) as caught:
        calls.run_call(mod.f, calls.Call("f", (q,)), "elbo.kl: f", path)
    assert what in str(caught.value)
    if route not in ("pop_the_stack_for_good", "switch_state_off"):
        assert "(line " in str(caught.value)
    # everything is put back: the next call, and torch itself, are unaffected
    assert torch._C._len_torch_function_stack() == 0 and not torch._C._is_torch_function_all_disabled()
    assert F.scaled_dot_product_attention is torch._C._nn.scaled_dot_product_attention
    assert type(torch_kl._KL_REGISTRY) is dict and torch._VF.vf is torch._C._VariableFunctions
    assert torch.nn.LSTMCell(4, 3)(q[0])[0].shape == (3, 3)


def test_runtime_trip_wire_keeps_allowed_building_blocks(tmp_path):
    body = """
        x = torch.softmax(q, -1) + torch.sigmoid(q) + torch.tanh(q) + (1 - q) + F.logsigmoid(q)
        x = x + nn.Linear(4, 4)(q) + F.linear(q, q.new_ones(4, 4)) + torch.einsum("bij,bkj->bik", q, q).sum()
        x = x + F.binary_cross_entropy_with_logits(q, torch.sigmoid(q), reduction="none")
        x = x + torch.distributions.Normal(q, 1.0).log_prob(q) + torch.nn.RNNCell(4, 4)(q[0])
        return x.masked_fill(q > 3, 0.0)
    """
    mod, path = _load(body, tmp_path, "runtime_allowed")
    q = torch.randn(2, 3, 4)
    result = calls.run_call(
        mod.f, calls.Call("f", (q,), grad_wrt=(0,), cotangents=[torch.ones(2, 3, 4)]), "elbo.kl: f", path
    )
    assert result.outputs.shape == (2, 3, 4) and result.grads[0].shape == (2, 3, 4)


def test_the_worker_trips_even_without_the_static_check(tmp_path):
    """The runtime layer holds in the isolated worker on its own (the static refusal taken away)."""
    (tmp_path / "attention.py").write_text(
        _replace(
            "attention",
            "scaled_dot_product_attention",
            _sdpa("""
        with torch._C.DisableTorchFunction():
            out = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    """),
        )
    )
    impl = open_implementation(tmp_path, "attention", "sandbox")
    try:
        assert "scaled_dot_product_attention" in impl.refused
        q = torch.randn(2, 3, 4)
        with pytest.raises(ForbiddenCall, match="DisableTorchFunction"):
            impl.call("scaled_dot_product_attention", q, q, q)
        impl.refused.clear()
        with pytest.raises(ForbiddenCall, match=r"torch._C.DisableTorchFunction \(line \d+\)"):
            impl.call("scaled_dot_product_attention", q, q, q)
        assert impl.call("causal_mask", 3).dtype == torch.bool
    finally:
        impl.close()


# -- the red team, through the real grading path -------------------------------------------------------------------
#: Import-time code that, in the worker, turns both checks into no-ops: too late for the
#: static check, whose answer the worker gave before loading the file.
TAMPER = """
import contextlib, sys
for _name in list(sys.modules):
    if _name.startswith("grader"):
        if hasattr(sys.modules[_name], "check_source"):
            sys.modules[_name].check_source = lambda *a, **k: {}
        if hasattr(sys.modules[_name], "forbid_library_solutions"):
            sys.modules[_name].forbid_library_solutions = contextlib.nullcontext
"""


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """Every attack, a submission that tampers with the checker at import, and solutions
    from allowed building blocks, graded in one run (each in its own worker)."""
    root = tmp_path_factory.mktemp("guard")
    entries = []
    for attack, (module, exercise, name, code, _) in ATTACKS.items():
        folder = root / attack
        folder.mkdir()
        (folder / f"{module}.py").write_text(_replace(module, name, code))
        entries.append((attack, folder, [exercise] + ([CONTROL[attack]] if attack in CONTROL else [])))
    folder = root / "tamper_with_the_checker"
    folder.mkdir()
    (folder / "attention.py").write_text(
        TAMPER
        + _replace(
            "attention",
            "scaled_dot_product_attention",
            _sdpa("out = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)"),
        )
    )
    entries.append(("tamper_with_the_checker", folder, ["attention.sdpa"]))
    folder = root / "allowed"
    folder.mkdir()
    for module in ("elbo", "lstm"):
        source = SOLUTIONS[module]
        for mod, _, name, code in ALLOWED:
            if mod == module:
                source = _replace(module, name, code, source)
        (folder / f"{module}.py").write_text(source)
    (folder / "attention.py").write_text(SOLUTIONS["attention"])
    entries.append(("allowed", folder, ["attention.mha"] + [ex for _, ex, _, _ in ALLOWED]))
    return runner.grade_many(entries, env={"GRADER_CALL_TIMEOUT": "10"})


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_an_attack_loses_its_exercise_with_feedback_naming_the_call(attack, graded):
    module, exercise, name, _, what = ATTACKS[attack]
    results = {r.exercise.id: r for r in graded[attack].results}
    feedback = "\n".join(results[exercise].feedback())
    assert results[exercise].score == 0, f"{attack} earned {results[exercise].score}\n{feedback}"
    assert what in feedback and "which this exercise asks you to write yourself" in feedback, feedback
    assert "(line " in feedback
    if attack in CONTROL:
        other = results[CONTROL[attack]]
        assert other.score == other.max_score, "\n".join(other.feedback())


def test_tampering_with_the_checker_at_import_changes_nothing(graded):
    result = graded["tamper_with_the_checker"].results[0]
    feedback = "\n".join(result.feedback())
    assert result.score == 0 and "scaled_dot_product_attention" in feedback, feedback


def test_allowed_building_blocks_keep_full_marks(graded):
    for result in graded["allowed"].results:
        assert result.score == result.max_score, f"{result.exercise.id}\n" + "\n".join(result.feedback())
