"""Staff grading draws its examples from a secret key (issue #10, item 5).

The attack: a student records every input -> output pair (gradients too) of a correct
implementation during a local check, then submits a file that hashes its inputs and
returns the recorded outputs.  Under the staff key the inputs differ, so the table earns
no more than code that returns zeros of the right shapes; the same key always gives the
same grade, and the key never reaches the student's code nor the results.
"""

import base64
import csv
import json
import lzma
import os
import re
import secrets
import stat
import subprocess
import sys

import pytest
import torch

from grader import ROOT, staffkey
from grader.grading import runner
from grader.grading.staging import MAX_FILE_BYTES
from grader.testing import strategies as S

REFERENCE = (ROOT / "solutions" / "attention.py").read_text()

# ----------------------------------------------------------------------------- the attack

#: Shared by the recorder and the lookup: a digest of a call's inputs (values, dtypes,
#: shapes, the default dtype), and for ``nn.Module`` s their parameters.
DIGEST = """
import hashlib as _hashlib

def _digest(name, *parts):
    h = _hashlib.sha256(name.encode())
    for p in parts:
        if isinstance(p, torch.Tensor):
            t = p.detach()
            h.update(f"T{t.dtype}{tuple(t.shape)}".encode())
            h.update(t.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
        else:
            h.update(repr(p).encode())
        h.update(b"|")
    h.update(str(torch.get_default_dtype()).encode())
    return h.hexdigest()[:24]


def _on_cpu(*parts):
    return all(p.device.type == "cpu" for p in parts if isinstance(p, torch.Tensor))
"""

#: Appended to the reference: every public name records (digest -> outputs, and the
#: gradients of the backward pass the tests run) into a table saved at exit.
RECORDER = (
    DIGEST
    + '''
import atexit as _atexit
import os as _os

_TABLE = {}
_DEPTH = [0]


class _Rec(torch.autograd.Function):
    """Runs the reference on differentiable copies; its backward records the gradients."""

    @staticmethod
    def forward(ctx, key, fn, *tensors):
        with torch.enable_grad():
            leaves = [t.detach().requires_grad_(t.is_floating_point()) for t in tensors]
            outs = fn(*leaves)
        ctx.key, ctx.leaves, ctx.outs = key, leaves, outs
        done = tuple(o.detach().clone() for o in outs)
        ctx.mark_non_differentiable(*[o for o in done if not o.is_floating_point()])
        return done

    @staticmethod
    def backward(ctx, *cots):
        pairs = [(o, c) for o, c in zip(ctx.outs, cots) if o.requires_grad and c is not None]
        wanted = [leaf for leaf in ctx.leaves if leaf.requires_grad]
        grads = torch.autograd.grad([o for o, _ in pairs], wanted, [c for _, c in pairs], allow_unused=True)
        it = iter(grads)
        full = [next(it) if leaf.requires_grad else None for leaf in ctx.leaves]
        _TABLE.setdefault(ctx.key, {})["grads"] = [None if g is None else g.detach().clone() for g in full]
        return (None, None, *full)


def _recorded(key, fn, tensors, multi):
    if _DEPTH[0]:
        outs = fn(*tensors)
    else:
        _DEPTH[0] += 1
        try:
            outs = _Rec.apply(key, fn, *tensors) if tensors else fn()
        finally:
            _DEPTH[0] -= 1
        entry = _TABLE.setdefault(key, {})
        entry["out"] = [o.detach().clone() for o in outs]
        entry.setdefault("test", _os.environ.get("PYTEST_CURRENT_TEST", "").split(" ")[0])
    return tuple(outs) if multi else outs[0]


def _wrap(name, fn, multi=False):
    def wrapper(*args, **kwargs):
        if _DEPTH[0] or not _on_cpu(*args, *kwargs.values()):
            return fn(*args, **kwargs)
        key = _digest(name, *args, *sorted(kwargs.items()))
        idx = [i for i, a in enumerate(args) if isinstance(a, torch.Tensor) and a.is_floating_point()]

        def call(*leaves):
            a = list(args)
            for i, leaf in zip(idx, leaves):
                a[i] = leaf
            out = fn(*a, **kwargs)
            return tuple(out) if multi else (out,)
        return _recorded(key, call, [args[i] for i in idx], multi)
    return wrapper


causal_mask = _wrap("causal_mask", causal_mask)
padding_mask = _wrap("padding_mask", padding_mask)
split_heads = _wrap("split_heads", split_heads)
merge_heads = _wrap("merge_heads", merge_heads)
sinusoidal_positional_encoding = _wrap("sinusoidal_positional_encoding", sinusoidal_positional_encoding)
scaled_dot_product_attention = _wrap("sdpa", scaled_dot_product_attention, multi=True)
_ReferenceMHA = MultiHeadAttention


class MultiHeadAttention(_ReferenceMHA):
    def forward(self, query, key, value, mask=None):
        if _DEPTH[0] or not _on_cpu(query, key, value, mask):
            return super().forward(query, key, value, mask)
        names = sorted(n for n, _ in self.named_parameters())
        params = [dict(self.named_parameters())[n] for n in names]
        digest = _digest("mha", self.num_heads, query, key, value, mask, *params)
        shadow = _ReferenceMHA(self.embed_dim, self.num_heads, bias=self.q_proj.bias is not None)

        def call(q, k, v, *ps):
            return tuple(torch.func.functional_call(shadow, dict(zip(names, ps)), (q, k, v, mask)))
        return _recorded(digest, call, [query, key, value, *params], multi=True)


_atexit.register(lambda: torch.save(_TABLE, TABLE_PATH))
'''
)

#: The lookup submission: the recorded table, and zeros of a plausible shape for any
#: input it does not know (an empty table makes it the all-zeros submission).
LOOKUP = (
    """
import base64
import lzma

import torch
from torch import nn
"""
    + DIGEST
    + """
_DATA = lzma.decompress(base64.b85decode(BLOB))
_DTYPES = {"float32": torch.float32, "float64": torch.float64, "float16": torch.float16,
           "bfloat16": torch.bfloat16, "bool": torch.bool, "int64": torch.int64}


def _tensor(spec):
    dtype, shape, start, size = spec
    if not size:
        return torch.empty(shape, dtype=_DTYPES[dtype])
    return torch.frombuffer(bytearray(_DATA[start:start + size]), dtype=_DTYPES[dtype]).reshape(shape)


_TABLE = {key: {part: [None if s is None else _tensor(s) for s in specs] for part, specs in entry.items()}
          for key, entry in META.items()}


class _Replay(torch.autograd.Function):
    @staticmethod
    def forward(ctx, entry, *tensors):
        ctx.entry, ctx.like = entry, tensors
        outs = tuple(o.clone() for o in entry["out"])
        ctx.mark_non_differentiable(*[o for o in outs if not o.is_floating_point()])
        return outs

    @staticmethod
    def backward(ctx, *cots):
        grads = ctx.entry.get("grads") or [None] * len(ctx.like)
        return (None, *[None if g is None else g.to(t.dtype) for g, t in zip(grads, ctx.like)])


def _lookup(key, tensors, zeros, multi):
    entry = _TABLE.get(key) if key else None
    if entry is None or "out" not in entry:
        return zeros()
    outs = _Replay.apply(entry, *tensors) if tensors else tuple(o.clone() for o in entry["out"])
    return tuple(outs) if multi else outs[0]


def _public(name, zeros, multi=False):
    def fn(*args, **kwargs):
        key = _digest(name, *args, *sorted(kwargs.items())) if _on_cpu(*args, *kwargs.values()) else None
        tensors = [a for a in args if isinstance(a, torch.Tensor) and a.is_floating_point()]
        return _lookup(key, tensors, lambda: zeros(*args, **kwargs), multi)
    return fn


def _zeros_sdpa(q, k, v, mask=None):
    return (torch.zeros(*q.shape[:-1], v.shape[-1], dtype=q.dtype, device=q.device),
            torch.zeros(*q.shape[:-1], k.shape[-2], dtype=q.dtype, device=q.device))


scaled_dot_product_attention = _public("sdpa", _zeros_sdpa, multi=True)
causal_mask = _public("causal_mask", lambda length, device=None: torch.zeros(length, length, dtype=torch.bool,
                                                                             device=device))
padding_mask = _public("padding_mask", lambda lengths, max_len: torch.zeros(lengths.shape[0], max_len,
                                                                            dtype=torch.bool, device=lengths.device))
split_heads = _public("split_heads", lambda x, h: torch.zeros(x.shape[0], h, x.shape[1], x.shape[2] // h,
                                                              dtype=x.dtype, device=x.device))
merge_heads = _public("merge_heads", lambda x: torch.zeros(x.shape[0], x.shape[2], x.shape[1] * x.shape[3],
                                                           dtype=x.dtype, device=x.device))
sinusoidal_positional_encoding = _public("sinusoidal_positional_encoding", lambda n, d: torch.zeros(n, d))


class MultiHeadAttention(nn.Module):
    def __init__(self, embed_dim, num_heads, bias=True):
        super().__init__()
        self.embed_dim, self.num_heads = embed_dim, num_heads
        self.q_proj = nn.Linear(embed_dim, embed_dim, bias=bias)
        self.k_proj = nn.Linear(embed_dim, embed_dim, bias=bias)
        self.v_proj = nn.Linear(embed_dim, embed_dim, bias=bias)
        self.out_proj = nn.Linear(embed_dim, embed_dim, bias=bias)

    def forward(self, query, key, value, mask=None):
        names = sorted(n for n, _ in self.named_parameters())
        params = [dict(self.named_parameters())[n] for n in names]
        digest = (_digest("mha", self.num_heads, query, key, value, mask, *params)
                  if _on_cpu(query, key, value, mask) else None)
        b, lq, lk = query.shape[0], query.shape[1], key.shape[1]

        def zeros():
            return (torch.zeros(b, lq, self.embed_dim, dtype=query.dtype, device=query.device),
                    torch.zeros(b, self.num_heads, lq, lk, dtype=query.dtype, device=query.device))
        return _lookup(digest, [query, key, value, *params], zeros, multi=True)
"""
)


def lookup_source(table):
    """The lookup submission holding ``table`` (one flat, compressed buffer of tensor bytes)."""
    data, meta = bytearray(), {}

    def spec(t):
        if t is None:
            return None
        raw = t.detach().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
        data.extend(raw)
        return (str(t.dtype).removeprefix("torch."), tuple(t.shape), len(data) - len(raw), len(raw))

    for key, entry in table.items():
        if any(t.device.type != "cpu" for t in entry["out"]):
            continue
        meta[key] = {part: [spec(t) for t in entry[part]] for part in ("out", "grads") if entry.get(part)}
    blob = base64.b85encode(lzma.compress(bytes(data))).decode()
    return f"BLOB = {blob!r}\nMETA = {meta!r}\n" + LOOKUP


def fitting(table, cap=MAX_FILE_BYTES - (16 << 10)):
    """The largest table, made of whole tests' entries (smallest tests first), whose lookup
    submission fits in the batch's file size cap: what a student would hand in."""
    sizes = {}
    for entry in table.values():
        sizes[entry["test"]] = sizes.get(entry["test"], 0) + sum(
            t.numel() * t.element_size() for part in ("out", "grads") for t in entry.get(part) or [] if t is not None
        )
    order = sorted(sizes, key=sizes.get)
    lo, hi = 0, len(order)  # the longest prefix of tests that fits
    while lo < hi:
        mid = (lo + hi + 1) // 2
        keep = set(order[:mid])
        if len(lookup_source({k: e for k, e in table.items() if e["test"] in keep})) <= cap:
            lo = mid
        else:
            hi = mid - 1
    keep = set(order[:lo])
    return {k: e for k, e in table.items() if e["test"] in keep}, order[:lo]


def _env(**extra):
    """The environment of a grader subprocess: no staff key unless given."""
    env = {k: v for k, v in os.environ.items() if k not in (staffkey.ENV, staffkey.FD_ENV)}
    env.update(GRADER_CALL_TIMEOUT="10", **extra)
    return env


@pytest.fixture(scope="module")
def attack(tmp_path_factory):
    """``(lookup_dir, zeros_dir, table)``: the table recorded by the project's own local
    check (in-process, the reference wrapped), and the two submissions built from it."""
    root = tmp_path_factory.mktemp("attack")
    rec = root / "rec"
    rec.mkdir()
    table_path = root / "table.pt"
    (rec / "attention.py").write_text(REFERENCE + "\n" + RECORDER.replace("TABLE_PATH", repr(str(table_path))))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            str(ROOT / "tests" / "exercises" / "test_attention.py"),
            "--submission",
            str(rec),
            "--adapter",
            "inprocess",
            "-p",
            "no:cacheprovider",
            "-q",
            "--import-mode=importlib",
        ],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    # what matters is the table: the recorder itself may trip checks (it writes files), 1 = some tests failed
    assert done.returncode in (0, 1) and table_path.exists(), done.stdout[-3000:] + done.stderr[-3000:]
    recorded = torch.load(table_path, weights_only=True)
    assert len(recorded) > 100 and sum("grads" in e for e in recorded.values()) > 10
    table, tests = fitting(recorded)  # the whole table is a few MiB: keep the tests that fit
    assert len(tests) >= 15, tests
    lookup, zeros = root / "subs" / "lookup", root / "subs" / "zeros"
    for folder, entries in ((lookup, table), (zeros, {})):
        folder.mkdir(parents=True)
        (folder / "attention.py").write_text(lookup_source(entries))
    assert (lookup / "attention.py").stat().st_size <= MAX_FILE_BYTES  # it passes the batch's size cap
    return lookup, zeros, table


#: A submission that looks for the staff key everywhere it can read, at import and at call
#: time, and hands back whatever it found in an exception message (which lands in the
#: feedback of results.json).  It never finds the key, and says so (the channel works).
HOSTILE = (
    REFERENCE
    + """

import os as _os
import re as _re

_HEX = _re.compile(rb"[0-9a-fA-F]{64}")


def _scan():
    found, blobs, outs = set(), [b"\\0".join(f"{k}={v}".encode() for k, v in _os.environ.items())], []
    outs += KNOWN_OUTS  # where the batches put their results, as a student who guessed them would
    for pid in ["self"] + [p for p in _os.listdir("/proc") if p.isdigit()]:
        for what in ("environ", "cmdline"):
            try:
                with open(f"/proc/{pid}/{what}", "rb") as fh:
                    blobs.append(fh.read())
            except OSError:
                pass
    for blob in blobs:
        args = blob.split(b"\\0")
        for i, arg in enumerate(args):
            if arg.startswith((b"GRADER_STAFF_KEY=", b"GRADER_STAFF_KEY_FD=")):
                found.add(arg.decode(errors="replace"))
            if arg == b"--out" and i + 1 < len(args):
                outs.append(args[i + 1].decode(errors="replace"))
        found.update(m.decode() for m in _HEX.findall(blob))
    for out in outs:
        for name in (".staff_key", ".staff_key_id"):
            try:
                with open(_os.path.join(out, name)) as fh:
                    found.add(fh.read().strip())
            except OSError:
                pass
    return found, bool(outs)


_FOUND_AT_IMPORT = _scan()


def causal_mask(length, device=None):
    found, tried = _scan()
    found |= _FOUND_AT_IMPORT[0]
    if found:
        raise RuntimeError("LEAKED: " + " ".join(sorted(found)))
    raise RuntimeError("scanned os.environ and /proc/*/environ, /proc/*/cmdline: nothing found; "
                       f"tried OUT_DIR/.staff_key from the batch's --out: {tried}")
"""
)


def _batch(subs, out, key=None):
    """Run ``python -m grader batch`` (with ``GRADER_STAFF_KEY=key`` if given); its output."""
    env = _env(**({staffkey.ENV: key} if key else {}))
    done = subprocess.run(
        [sys.executable, "-m", "grader", "batch", str(subs), "--out", str(out), "--workers", "2"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return done.stdout + done.stderr


def _results(out, ident):
    """``results.json`` of ``ident`` as text, without what differs per run: the staging
    folder's name and the grading time."""
    result = json.loads((out / ident / "results.json").read_text())
    result.pop("execution_time", None)
    text = json.dumps(result, indent=1, sort_keys=True)
    return re.sub(r"grader-stage-\w+", "grader-stage-X", text)


def _per_exercise(out, ident):
    result = json.loads((out / ident / "results.json").read_text())
    scores = {}
    for test in result["tests"]:
        if test["tags"][0] == "attention":
            scores[test["tags"][1]] = round(scores.get(test["tags"][1], 0.0) + test["score"], 4)
    return scores


def _leaks(key, *texts):
    return [t[max(0, t.find(key) - 200) : t.find(key) + 80] for t in texts if key in t]


@pytest.fixture(scope="module")
def graded(attack, tmp_path_factory):
    """The lookup, zeros and hostile submissions graded by batches: A and B with the same
    ``GRADER_STAFF_KEY`` into fresh folders, C with the key the batch makes itself, then
    C resumed after deleting its results; and lookup and zeros graded by a local check."""
    lookup, zeros, table = attack
    root = tmp_path_factory.mktemp("graded")
    subs = root / "subs"
    subs.mkdir()
    for name, folder in (("lookup", lookup), ("zeros", zeros)):
        (subs / name).mkdir()
        (subs / name / "attention.py").write_text((folder / "attention.py").read_text())
    key = secrets.token_hex(32)
    out = {"A": root / "A", "B": root / "B", "C": root / "C"}
    (subs / "hostile").mkdir()
    (subs / "hostile" / "attention.py").write_text(HOSTILE.replace("KNOWN_OUTS", repr([str(p) for p in out.values()])))
    printed = {"A": _batch(subs, out["A"], key), "B": _batch(subs, out["B"], key)}
    subs_c = root / "subs_c"
    subs_c.mkdir()
    for name in ("zeros", "hostile"):
        (subs_c / name).mkdir()
        (subs_c / name / "attention.py").write_text((subs / name / "attention.py").read_text())
    printed["C"] = _batch(subs_c, out["C"])
    first_c = {i: _results(out["C"], i) for i in ("zeros", "hostile")}
    file_key = (out["C"] / staffkey.KEY_FILE).read_text().strip()
    for ident in ("zeros", "hostile"):
        (out["C"] / ident / "results.json").unlink()
    printed["C resumed"] = _batch(subs_c, out["C"])
    local = runner.grade_many([("lookup", lookup, ["attention"]), ("zeros", zeros, ["attention"])])
    return dict(key=key, file_key=file_key, out=out, printed=printed, first_c=first_c, local=local)


def test_lookup_table_earns_no_more_than_zeros_under_the_staff_key(graded):
    local = graded["local"]
    a = graded["out"]["A"]
    lookup, zeros = _per_exercise(a, "lookup"), _per_exercise(a, "zeros")
    print(
        f"lookup: local {local['lookup'].score:g}, staff {sum(lookup.values()):g}; "
        f"zeros: local {local['zeros'].score:g}, staff {sum(zeros.values()):g}; per exercise {lookup} vs {zeros}"
    )
    # the attack is real: locally the table scores well above zeros
    assert local["lookup"].score >= local["zeros"].score + 10
    # under the key it earns nothing more than zeros, on every exercise
    for ex, score in lookup.items():
        assert score <= zeros[ex], (ex, score, zeros[ex])


def test_same_key_same_records_and_another_key_other_examples(graded):
    out = graded["out"]
    for ident in ("lookup", "zeros", "hostile"):  # a second batch with the same key: the same records
        assert _results(out["A"], ident) == _results(out["B"], ident), ident
    for ident in ("zeros", "hostile"):  # a resumed batch reuses the key it made: the same records
        assert _results(out["C"], ident) == graded["first_c"][ident], ident
    with open(out["C"] / "grades.csv") as fh:
        rows = {row["id"]: row for row in csv.DictReader(fh)}
    assert float(rows["zeros"]["total"]) == json.loads(_results(out["C"], "zeros"))["score"]
    # another key draws other examples: the failing inputs and values shown for zeros differ
    a_tests = {t["name"]: t["output"] for t in json.loads(_results(out["A"], "zeros"))["tests"]}
    c_tests = {t["name"]: t["output"] for t in json.loads(_results(out["C"], "zeros"))["tests"]}
    sdpa = next(name for name in a_tests if name.startswith("attention.sdpa"))
    assert a_tests[sdpa] != c_tests[sdpa]


def test_the_key_reaches_neither_the_worker_nor_the_results(graded):
    out, printed = graded["out"], graded["printed"]
    assert not (out["A"] / staffkey.KEY_FILE).exists()  # GRADER_STAFF_KEY given: no key file is made
    info = (out["C"] / staffkey.KEY_FILE).stat()
    assert stat.S_IMODE(info.st_mode) == 0o600 and len(graded["file_key"]) == 64
    texts = list(printed.values())
    for folder in out.values():
        texts += [
            p.read_text()
            for p in folder.rglob("*")
            if p.is_file() and p.name not in (staffkey.KEY_FILE, staffkey.ID_FILE)
        ]
    for key in (graded["key"], graded["file_key"]):
        assert not _leaks(key, *texts)
    for run in ("A", "C"):
        hostile = _results(out[run], "hostile")
        assert "nothing found" in hostile or "LEAKED" in hostile, hostile[:3000]  # the channel works
        assert "staff_key from the batch's --out: True" in hostile  # it saw where the key file is


def test_check_staff_without_a_key_says_its_examples_are_public(attack):
    _, zeros, _ = attack
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "grader",
            "check",
            "attention.causal_mask",
            "--staff",
            "--quiet",
            "--submission",
            str(zeros),
        ],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert f"{staffkey.ENV} is not set" in done.stderr and "public" in done.stderr


# ----------------------------------------------------------------------------- units (fast)


def test_generator_is_unchanged_without_a_key_and_keyed_with_one(monkeypatch):
    monkeypatch.setattr(staffkey, "hide_this_process", lambda: None)
    staffkey.install(None)
    try:
        plain = torch.rand(5, generator=torch.Generator().manual_seed(7))
        assert torch.equal(torch.rand(5, generator=S.generator(7)), plain)  # local runs: as before
        assert staffkey.hypothesis_seed("t::x") is None
        staffkey.install("k1")
        one = torch.rand(5, generator=S.generator(7))
        assert torch.equal(one, torch.rand(5, generator=S.generator(7)))  # the same key, the same values
        assert not torch.equal(one, plain)
        assert 0 <= staffkey.tensor_seed(7) < 2**63
        seed_1 = staffkey.hypothesis_seed("t::x")
        staffkey.install("k2")
        assert not torch.equal(one, torch.rand(5, generator=S.generator(7)))
        assert staffkey.hypothesis_seed("t::x") != seed_1
    finally:
        staffkey.install(None)


def test_batch_key_file_is_private_reused_and_never_mixed(tmp_path, monkeypatch):
    monkeypatch.delenv(staffkey.ENV, raising=False)
    key = staffkey.for_batch(tmp_path)
    assert stat.S_IMODE((tmp_path / staffkey.KEY_FILE).stat().st_mode) == 0o600
    assert staffkey.for_batch(tmp_path) == key  # a resumed batch: the same key
    monkeypatch.setenv(staffkey.ENV, "another key")
    with pytest.raises(staffkey.StaffKeyError, match="another staff key"):
        staffkey.for_batch(tmp_path)
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    assert staffkey.for_batch(fresh) == b"another key" and not (fresh / staffkey.KEY_FILE).exists()


def test_runner_sends_the_key_through_a_pipe_only(tmp_path, monkeypatch):
    (tmp_path / "attention.py").write_text(REFERENCE)
    seen = {}

    class FakeChild:
        def __init__(self, cmd, **kwargs):
            env = kwargs["env"]
            seen.update(cmd=cmd, env=env, fds=kwargs.get("pass_fds"))
            if staffkey.FD_ENV in env:
                seen["sent"] = os.read(int(env[staffkey.FD_ENV]), 1000)
            self.pid = os.getpid()

        def wait(self, timeout=None):
            return 5

    monkeypatch.setenv(staffkey.ENV, "the-secret-from-the-shell")
    monkeypatch.setattr(runner.subprocess, "Popen", FakeChild)
    monkeypatch.setattr(runner, "_kill_group", lambda pgid: None)
    monkeypatch.setattr(runner, "_prestart", lambda env: None)  # no zygote: only the key's pipe is passed
    # the isolation preflight starts a process of its own (tested in test_isolation.py)
    monkeypatch.setattr(runner.isolation, "require", lambda protect, weak: ("namespaces", []))
    runner.grade(tmp_path, ["attention.causal_mask"], staff=True, staff_key="the-secret")
    assert seen["sent"] == b"the-secret" and tuple(seen["fds"]) == (int(seen["env"][staffkey.FD_ENV]),)
    assert not any("secret" in part for part in seen["cmd"])
    assert not any("secret" in value for value in seen["env"].values())  # the shell's key is dropped too
    seen.clear()
    runner.grade(tmp_path, ["attention.causal_mask"], staff=True)  # no key: none sent, public examples
    assert staffkey.FD_ENV not in seen["env"] and not seen["fds"]
