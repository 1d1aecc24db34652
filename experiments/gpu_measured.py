"""GPU predictions against timings measured on a GPU no calibration has seen: random programs.

    # on a machine with an NVIDIA GPU and CUDA jax (writes <out>/gpu_measured_<gpu>.csv + .json):
    python experiments/gpu_measured.py --measure --seed 20261204 --out /tmp/gpu
    # anywhere (CPU): predicts every measured program and writes the comparison
    python experiments/gpu_measured.py

A generator draws programs from the families people run on a GPU, sized for one: GEMMs (bf16 and
fp32 at JAX's default precision), MLPs (forward and an SGD training step), convolution blocks
(NHWC, strided or not, with a normalisation), attention blocks (softmax over ``b h t t`` scores, not
a fused kernel), layer norm / RMS norm / softmax rows, elementwise chains, the zoo's BERT, GPT-2,
ResNet-18 and MobileNetV2 (inference and an Adam training step) and MaxText-style decoders at
random widths, depths, batch and sequence length. Two fixed anchors (an 8192^3 bf16 GEMM and a
1 GiB ``x * 1.5``) check the timing against the GPU's peak rates and are left out of the scores.

**Measuring** (``--measure``, on the GPU). Each program is one ``jax.jit`` (named ``p<index>``,
so its XLA module is ``jit_p<index>``), compiled and warmed up (two calls), and timed two ways,
in rounds over all programs:

* *device time*, the quantity ``perfjax.predict`` predicts by default: the program is run three
  times under ``jax.profiler`` and, per run, the span from its first kernel's start to its last
  kernel's end is read from the trace's GPU plane (CUPTI); the median over runs and rounds;
* *wall time*: calls issued back to back for at least 20 ms, then one synchronisation, divided by
  the number of calls (what a training loop sees; for a small program the host's dispatch, not
  the GPU, sets it).

**Predicting** (default, any machine). Each measured program is rebuilt from the seed (the
generator is deterministic and its labels are checked against the CSV) and predicted with
``perfjax.predict(fn, inputs, device=<the GPU>)``: the shipped GPU calibration, which never saw
this GPU, and the priors (``calibration=False``). Reported: median and p90 absolute percentage
error against the device time, per family and over the programs whose device time is at least
50 us (below that, launch latencies the model prices as constants dominate), the share better
than the priors, and the 80% interval's coverage.

Outputs: ``docs/calibration/gpu_measured_<gpu>.csv`` (the measurement, from ``--measure``, with
``_meta.json`` and ``_kernels.json``: the name and duration of every kernel of each program's first
traced run),
``gpu_measured_<gpu>_predicted.csv``, ``gpu_measured_<gpu>.json`` (summary) and
``gpu_measured_<gpu>.png`` (predicted vs measured).
"""

from __future__ import annotations

import argparse
import csv
import glob
import json
import math
import os
import pathlib
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
for _path in (ROOT, ROOT / "experiments"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

import host_generalization as hg  # noqa: E402  (the generator's shared pieces)

DOCS = ROOT / "docs" / "calibration"
_materialize, _pick = hg._materialize, hg._pick
S = jax.ShapeDtypeStruct
FIELDS = (
    "index", "family", "program", "device_s", "device_busy_s", "kernels", "wall_s", "sync_s",
    "round_spread", "compile_s", "error",
)  # fmt: skip


# --------------------------------------------------------------------------------------------
# the generator (numpy's Generator only: the same programs on every machine and jax version)
# --------------------------------------------------------------------------------------------


def _dt(rng, p_bf16: float) -> Any:
    return jnp.bfloat16 if rng.random() < p_bf16 else jnp.float32


def gemm(rng):
    dt = _dt(rng, 0.6)
    m, k, n = (int(_pick(rng, [256, 512, 1000, 1024, 2048, 3072, 4096, 8192])) for _ in range(3))
    return (
        f"gemm {m}x{k}x{n} {jnp.dtype(dt).name}",
        (lambda a, b: a @ b),
        (S((m, k), dt), S((k, n), dt)),
    )


def mlp(rng, train: bool):
    dt = _dt(rng, 0.5)
    batch = int(_pick(rng, [32, 128, 512, 2048, 8192]))
    widths = [
        int(_pick(rng, [512, 1024, 2048, 4096, 8192])) for _ in range(int(rng.integers(2, 5)))
    ]
    return hg.mlp_program(rng, batch, widths, dt, train)


def conv(rng):
    dt = _dt(rng, 0.5)
    b, hw = int(_pick(rng, [8, 16, 32, 64])), int(_pick(rng, [14, 28, 56, 112]))
    cin, cout = int(_pick(rng, [3, 32, 64, 128, 256])), int(_pick(rng, [32, 64, 128, 256, 512]))
    k, stride = int(_pick(rng, [1, 3, 3, 5, 7])), int(_pick(rng, [1, 1, 2]))
    norm = bool(rng.random() < 0.5)
    while b * hw * hw * max(cin, cout) > (1 << 27) and b > 1:  # at most 0.5 GiB fp32 a tensor
        b //= 2

    def fwd(w, x):
        y = jax.lax.conv_general_dilated(x, w, (stride, stride), "SAME",
                                         dimension_numbers=("NHWC", "HWIO", "NHWC"))  # fmt: skip
        if norm:
            y32 = y.astype(jnp.float32)
            m = y32.mean(axis=(0, 1, 2))
            v = ((y32 - m) ** 2).mean(axis=(0, 1, 2))
            y = ((y32 - m) * jax.lax.rsqrt(v + 1e-5)).astype(y.dtype)
        return jax.nn.relu(y)

    label = (f"conv b{b} {hw}x{hw}x{cin}->{cout} k{k} s{stride}{' +norm' if norm else ''} "
             f"{jnp.dtype(dt).name}")  # fmt: skip
    return label, fwd, (S((k, k, cin, cout), dt), S((b, hw, hw, cin), dt))


def attention(rng):
    dt = _dt(rng, 0.7)
    b, t = int(_pick(rng, [1, 2, 4, 8, 16])), int(_pick(rng, [256, 512, 1024, 2048, 4096]))
    h, d = int(_pick(rng, [8, 12, 16, 32])), int(_pick(rng, [64, 128]))
    while b * h * t * t > (1 << 28) and b > 1:  # scores at most 1 GiB fp32
        b //= 2
    causal = bool(rng.random() < 0.5)

    def fwd(q, k, v):
        s = jnp.einsum("bthd,bshd->bhts", q, k) / np.sqrt(d)
        if causal:
            s = jnp.where(jnp.tril(jnp.ones((t, t), bool)), s, -1e9)
        return jnp.einsum("bhts,bshd->bthd", jax.nn.softmax(s, axis=-1), v)

    x = S((b, t, h, d), dt)
    return (
        f"attention b{b} t{t} h{h} d{d}{' causal' if causal else ''} {jnp.dtype(dt).name}",
        fwd,
        (x, x, x),
    )


def norm(rng):
    rows = int(_pick(rng, [256, 1024, 4096, 16384, 65536]))
    cols = int(_pick(rng, [128, 512, 768, 1024, 4096, 16384]))
    while rows * cols > (1 << 28) and rows > 1:
        rows //= 2
    dt = _dt(rng, 0.3)
    kind = _pick(rng, ["layernorm", "rmsnorm", "softmax"])

    def fwd(x):
        x32 = x.astype(jnp.float32)
        if kind == "softmax":
            y = jax.nn.softmax(x32, axis=-1)
        elif kind == "rmsnorm":
            y = x32 * jax.lax.rsqrt(jnp.mean(x32 * x32, axis=-1, keepdims=True) + 1e-6)
        else:
            m = x32.mean(-1, keepdims=True)
            y = (x32 - m) * jax.lax.rsqrt(((x32 - m) ** 2).mean(-1, keepdims=True) + 1e-5)
        return y.astype(x.dtype)

    return f"{kind} {rows}x{cols} {jnp.dtype(dt).name}", fwd, (S((rows, cols), dt),)


def elementwise(rng):
    return hg.elementwise_program(rng, [1 << 16, 1 << 20, 1 << 22, 1 << 24, 1 << 26, 1 << 28])


def zoo(rng):
    import perfjax

    name, config, batches = _pick(rng, [
        ("bert", "base", [1, 8, 32]), ("gpt2", "small", [1, 8, 32]),
        ("resnet18", "imagenet", [1, 8, 32]), ("mobilenet_v2", "1.0", [1, 8, 32]),
    ])  # fmt: skip
    batch = int(_pick(rng, batches))
    train = bool(rng.random() < 0.5)
    m = perfjax.models.build(name, config=config, batch=batch)
    fn, inputs = m.training_step() if train else m.inference()
    return f"zoo {name} {config} b{batch} {'train' if train else 'infer'}", fn, inputs


def decoder(rng):
    import perfjax

    emb = int(_pick(rng, [512, 1024, 2048]))
    head_dim = int(_pick(rng, [64, 128]))
    layers = int(_pick(rng, [2, 4, 8]))
    seq = int(_pick(rng, [256, 512, 1024, 2048]))
    batch = int(_pick(rng, [1, 4, 8]))
    act = _pick(rng, ["relu", "swiglu"])
    train = bool(rng.random() < 0.5)
    d = perfjax.models.decoder(
        "tiny", emb_dim=emb, num_decoder_layers=layers, num_query_heads=emb // head_dim,
        head_dim=head_dim, mlp_dim=4 * emb, mlp_activation=act, vocab_size=32000,
        max_target_length=seq, attention_block=min(512, seq),
    )  # fmt: skip
    fn, inputs = d.training_step(batch, seq) if train else d.inference(batch, seq)
    label = (f"decoder d{emb} L{layers} hd{head_dim} {act} b{batch} t{seq} "
             f"{'train' if train else 'infer'}")  # fmt: skip
    return label, fn, inputs


FAMILIES: dict[str, Callable] = {
    "gemm": gemm,
    "mlp": lambda rng: mlp(rng, False),
    "mlp_train": lambda rng: mlp(rng, True),
    "conv": conv,
    "attention": attention,
    "norm": norm,
    "elementwise": elementwise,
    "zoo": zoo,
    "decoder": decoder,
}


def _anchors() -> list[tuple[str, str, Callable, tuple]]:
    a = S((8192, 8192), jnp.bfloat16)
    x = S((1 << 28,), jnp.float32)
    return [
        ("anchor", "anchor gemm 8192x8192x8192 bfloat16", lambda p, q: p @ q, (a, a)),
        ("anchor", "anchor scale 268435456 float32", lambda v: v * 1.5, (x,)),
    ]


def generate(seed: int, n: int) -> list[tuple[str, str, Callable | None, tuple]]:
    """The anchors, then ``n`` programs drawn with ``seed`` (families in turn)."""
    return hg.draw(FAMILIES, seed, n, first=_anchors())


# --------------------------------------------------------------------------------------------
# measuring (on the GPU)
# --------------------------------------------------------------------------------------------


def _named(fn: Callable, index: int) -> Callable:
    def program(*args):
        return fn(*args)

    program.__name__ = program.__qualname__ = f"p{index:03d}"
    return jax.jit(program)


def _wall(f, args, min_s: float = 0.02, max_calls: int = 2000) -> float:
    """Calls issued back to back until ``min_s`` has passed, one synchronisation at the end."""
    n, start = 0, time.perf_counter()
    out = None
    while n < 3 or (time.perf_counter() - start < min_s and n < max_calls):
        out = f(*args)
        n += 1
    jax.block_until_ready(out)
    return (time.perf_counter() - start) / n


def _sync(f, args, calls: int = 5) -> float:
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        jax.block_until_ready(f(*args))
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


_DERIVED_LINES = ("XLA Modules", "XLA Ops", "Steps", "Launch Stats", "Framework", "Source code")


def _union_s(evs: list[tuple[int, int]]) -> float:
    busy, end = 0, -math.inf  # the union of the kernels' intervals, ns
    for s, e in sorted(evs):
        if e > end:
            busy += e - max(s, end)
            end = e
    return busy * 1e-9


def _runs(evs: list[tuple[int, int, str]], calls: int) -> list[list[tuple[int, int]]]:
    """One module's kernels split into its ``calls`` runs: by run id where the trace gives one per
    run, else at the ``calls - 1`` widest gaps (each run was synchronised before the next)."""
    evs = sorted(evs)
    ids = {r for _, _, r in evs}
    if len(ids) == calls and "" not in ids:
        return [[(s, e) for s, e, r in evs if r == run] for run in sorted(ids)]
    ends = np.maximum.accumulate([e for _, e, _ in evs])
    gaps = [(evs[k + 1][0] - ends[k], k) for k in range(len(evs) - 1)]
    cuts = sorted(k for _, k in sorted(gaps, reverse=True)[: calls - 1])
    out, start = [], 0
    for k in [*cuts, len(evs) - 1]:
        out.append([(s, e) for s, e, _ in evs[start : k + 1]])
        start = k + 1
    return out


def _read_trace(logdir: str, calls: int, only: str | None = None) -> tuple[dict[str, dict], dict]:
    """Per XLA module (or, with ``only``, every kernel as that module's): device spans, busy
    times and kernel counts per run, from the GPU planes of the trace (CUPTI)."""
    from jax.profiler import ProfileData

    files = glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True)
    if not files:
        return {}, {"error": "no xplane.pb written"}
    pd = ProfileData.from_file(max(files, key=os.path.getmtime))
    per_module: dict[str, list[tuple[int, int, str]]] = {}
    names: dict[str, dict[tuple[int, int], str]] = {}  # per module: kernel name by (start, end)
    sample: dict[str, Any] = {"planes": [], "events": []}
    for plane in pd.planes:
        lines = list(plane.lines)
        sample["planes"].append({"name": plane.name, "lines": [ln.name for ln in lines][:20]})
        if not plane.name.startswith("/device:GPU"):
            continue
        for line in lines:
            if any(d in line.name for d in _DERIVED_LINES):
                continue
            for k, ev in enumerate(line.events):
                stats = {str(a): str(b) for a, b in ev.stats}
                if k < 3 and len(sample["events"]) < 30:
                    sample["events"].append(
                        {"line": line.name, "name": ev.name[:120], "start_ns": ev.start_ns,
                         "duration_ns": ev.duration_ns, "stats": {a: b[:80] for a, b in stats.items()}}
                    )  # fmt: skip
                module = only or stats.get("hlo_module", "")
                if module:
                    start = int(ev.start_ns)
                    per_module.setdefault(module, []).append(
                        (start, start + int(ev.duration_ns), stats.get("run_id", ""))
                    )
                    names.setdefault(module, {})[start, start + int(ev.duration_ns)] = ev.name
    out: dict[str, dict] = {}
    for module, evs in per_module.items():
        runs = [r for r in _runs(evs, calls) if r]
        out[module] = {
            "spans": [(max(e for _, e in r) - min(s for s, _ in r)) * 1e-9 for r in runs],
            "busy": [_union_s(r) for r in runs],
            "kernels": [len(r) for r in runs],
            # The first run's kernels in start order: (name, duration in us).
            "kernel_names": [
                (names[module].get((s, e), "?")[:160], (e - s) * 1e-3) for s, e in sorted(runs[0])
            ] if runs else [],
        }  # fmt: skip
    return out, sample


def _trace(call: Callable, only: str | None = None, calls: int = 3) -> tuple[dict, dict]:
    """``call()`` ``calls`` times, synchronised, under ``jax.profiler``; the trace read back."""
    logdir = tempfile.mkdtemp(prefix="gpu_measured_")
    jax.profiler.start_trace(logdir)
    for _ in range(calls):
        jax.block_until_ready(call())
    jax.profiler.stop_trace()
    return _read_trace(logdir, calls, only)


def measure(args) -> None:
    t_start = time.perf_counter()
    dev = jax.devices()[0]
    if dev.platform != "gpu" and not args.allow_cpu:
        sys.exit(f"--measure needs a GPU; jax sees {dev.platform!r} ({dev.device_kind}).")
    out_dir = pathlib.Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    gpu = args.gpu or dev.device_kind.lower().replace("nvidia ", "").replace(" ", "-")
    rows: dict[int, dict] = {}
    ready = []
    programs = generate(args.seed, args.n)
    for i, (family, label, fn, inputs) in enumerate(programs):
        row = {"index": i, "family": family, "program": label}
        rows[i] = row
        if args.only and family != "anchor" and not re.search(args.only, label):
            row["error"] = "skipped: --only"
            continue
        if time.perf_counter() - t_start > 0.55 * args.budget_s:
            row["error"] = "skipped: time budget"
            continue
        try:
            if fn is None:
                raise RuntimeError(label)
            f = _named(fn, i)
            xs = _materialize(inputs, 0)
            t0 = time.perf_counter()
            jax.block_until_ready(f(*xs))
            row["compile_s"] = time.perf_counter() - t0
            jax.block_until_ready(f(*xs))
        except Exception as e:  # a program this GPU or jax rejects: recorded, not hidden
            row["error"] = f"{type(e).__name__}: {e}"[:200]
            print(f"[{i + 1}/{len(programs)}] {label}: {row['error']}", flush=True)
            continue
        ready.append((i, f, xs))
        print(
            f"[{i + 1}/{len(programs)}] {label}: compiled in {row['compile_s']:.1f} s", flush=True
        )
    walls: dict[int, list[float]] = {i: [] for i, _, _ in ready}
    devs: dict[int, dict] = {i: {"spans": [], "busy": [], "kernels": []} for i, _, _ in ready}
    sample: dict = {}
    kernel_names: dict[int, list] = {}  # per program: its first traced run's kernels
    per_program = False
    for r in range(args.rounds):
        if r and time.perf_counter() - t_start > 0.8 * args.budget_s:
            break
        order = ready if r % 2 == 0 else ready[::-1]
        for i, f, xs in order:
            walls[i].append(_wall(f, xs))
        try:
            if per_program:  # the kernels carry no module name: one trace per program
                traced = {}
                for i, f, xs in order:
                    got, sample = _trace(lambda f=f, xs=xs: f(*xs), f"jit_p{i:03d}")
                    traced.update(got)
            else:
                traced, sample = _trace(
                    lambda o=order: [jax.block_until_ready(f(*xs)) for _i, f, xs in o]
                )
                per_program = len(traced) < len(ready) / 2
        except Exception as e:  # no profiler on this machine: wall times only, said so
            traced, sample = {}, {"error": f"{type(e).__name__}: {e}"[:300]}
        for i, _f, _xs in ready:
            rec = traced.get(f"jit_p{i:03d}")
            if rec:
                for key in devs[i]:
                    devs[i][key].extend(rec[key])
                kernel_names.setdefault(i, rec.get("kernel_names", []))
        if r == 0:
            for i, f, xs in ready:
                rows[i]["sync_s"] = _sync(f, xs)
        print(f"round {r + 1}: timed {len(ready)} programs, {len(traced)} modules in the trace "
              f"({time.perf_counter() - t_start:.0f} s)", flush=True)  # fmt: skip
    for i, _f, _xs in ready:
        w, d = walls[i], devs[i]
        rows[i]["wall_s"] = statistics.median(w)
        rows[i]["round_spread"] = (max(w) - min(w)) / statistics.median(w) if len(w) > 1 else None
        if d["spans"]:
            rows[i]["device_s"] = statistics.median(d["spans"])
            rows[i]["device_busy_s"] = statistics.median(d["busy"])
            rows[i]["kernels"] = int(statistics.median(d["kernels"]))
    csv_path = out_dir / f"gpu_measured_{gpu}_s{args.seed}.csv"
    with open(csv_path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=FIELDS)
        w.writeheader()
        for i in sorted(rows):
            w.writerow({k: rows[i].get(k, "") for k in FIELDS})
    meta = {
        "command": f"python experiments/gpu_measured.py --measure --seed {args.seed} --n {args.n}"
        + (f" --only {args.only!r}" if args.only else "") + f" --budget-s {args.budget_s:g}",
        "seed": args.seed, "n": args.n, "gpu": gpu, "device_kind": dev.device_kind,
        "jax": jax.__version__, "rounds": args.rounds, "seconds": time.perf_counter() - t_start,
        "xla_flags": os.environ.get("XLA_FLAGS", ""), "one_trace_per_program": per_program,
        "trace_sample": sample,
    }  # fmt: skip
    csv_path.with_name(csv_path.stem + "_meta.json").write_text(
        json.dumps(meta, indent=1, default=str)
    )
    # Which kernels XLA ran for each program (name, microseconds), from the first traced run.
    csv_path.with_name(csv_path.stem + "_kernels.json").write_text(json.dumps(
        {rows[i]["program"]: [[n, round(us, 3)] for n, us in ks] for i, ks in sorted(kernel_names.items())},
        indent=0,
    ))  # fmt: skip
    print(f"wrote {csv_path} ({sum('wall_s' in r for r in rows.values())} programs timed, "
          f"{sum('device_s' in r for r in rows.values())} with device time) in "
          f"{time.perf_counter() - t_start:.0f} s", flush=True)  # fmt: skip


# --------------------------------------------------------------------------------------------
# predicting (anywhere)
# --------------------------------------------------------------------------------------------


def _stats(ape) -> dict[str, float]:
    a = np.asarray(list(ape), float)
    if not a.size:
        return {"median": None, "p90": None, "n": 0}
    return {"median": float(np.median(a)), "p90": float(np.percentile(a, 90)), "n": int(a.size)}


def _measurements(path: pathlib.Path) -> tuple[dict, list[dict]]:
    meta_path = path.with_name(path.stem + "_meta.json")
    if not meta_path.exists():
        raise SystemExit(
            f"{path} has no {meta_path.name} beside it (the seed and count it was drawn with)."
        )
    meta = json.loads(meta_path.read_text())
    with open(path, newline="") as fh:
        return meta, list(csv.DictReader(fh))


def predict_measured(path: pathlib.Path, device: str | None = None) -> tuple[dict, list[dict]]:
    """Every program timed in ``path`` rebuilt and predicted; the comparison rows and summary."""
    import perfjax

    meta, measured = _measurements(path)
    device = device or meta["gpu"]
    programs = generate(int(meta["seed"]), int(meta["n"]))
    rows, calibration = [], None
    for m in measured:
        if not m.get("device_s"):
            continue
        i = int(m["index"])
        family, label, fn, inputs = programs[i]
        if label != m["program"]:
            raise SystemExit(
                f"{path.name} row {i} is {m['program']!r}; the generator gives {label!r}."
            )
        cal = perfjax.predict(fn, inputs, device=device)
        prior = perfjax.predict(fn, inputs, device=device, calibration=False)
        dev_s, lo_hi, calibration = float(m["device_s"]), cal.interval_s, cal.calibration
        rows.append({
            "index": i, "family": family, "program": label, "device_s": dev_s,
            "wall_s": float(m["wall_s"]), "predicted_s": cal.time_s, "prior_s": prior.time_s,
            "ape": abs(cal.time_s / dev_s - 1), "prior_ape": abs(prior.time_s / dev_s - 1),
            "interval_low_s": lo_hi[0] if lo_hi else None, "interval_high_s": lo_hi[1] if lo_hi else None,
            "covered": (lo_hi[0] <= dev_s <= lo_hi[1]) if lo_hi else None,
            "kernels_measured": int(float(m["kernels"])) if m.get("kernels") else None,
            "kernels_predicted": sum(k.executions for k in cal.kernels),
            "bottleneck": cal.bottleneck,
        })  # fmt: skip
        print(f"{label}: measured {dev_s * 1e6:.1f} us, predicted {cal.time_s * 1e6:.1f} us "
              f"({rows[-1]['ape']:.0%}; priors {rows[-1]['prior_ape']:.0%})", flush=True)  # fmt: skip
    scored = [r for r in rows if r["family"] != "anchor"]
    big = [r for r in scored if r["device_s"] >= 50e-6]

    def block(rs):
        cov = [r["covered"] for r in rs if r["covered"] is not None]
        return {
            "calibrated": _stats(r["ape"] for r in rs), "priors": _stats(r["prior_ape"] for r in rs),
            "better_than_priors": float(np.mean([r["ape"] < r["prior_ape"] for r in rs])) if rs else None,
            "interval_coverage": float(np.mean(cov)) if cov else None,
            "median_predicted_over_measured": float(np.median([r["predicted_s"] / r["device_s"] for r in rs]))
            if rs else None,
        }  # fmt: skip

    summary = {
        "measured": str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path),
        "measure_command": meta.get("command"), "device_kind": meta.get("device_kind"),
        "jax_on_gpu": meta.get("jax"), "device": device, "seed": meta["seed"],
        "programs": len(scored), "calibration": calibration,
        "all": block(scored), "at_least_50us": block(big),
        "per_family": {f: block([r for r in scored if r["family"] == f]) for f in FAMILIES},
        "anchors": [{k: r[k] for k in ("program", "device_s", "predicted_s", "prior_s")}
                    for r in rows if r["family"] == "anchor"],
    }  # fmt: skip
    return summary, rows


def _plot(rows: list[dict], path: pathlib.Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 6.5))
    colors = dict(zip([*FAMILIES, "anchor"], plt.cm.tab10.colors, strict=False))
    for fam, c in colors.items():
        rs = [r for r in rows if r["family"] == fam]
        if not rs:
            continue
        x = [r["device_s"] * 1e6 for r in rs]
        ax.scatter(x, [r["predicted_s"] * 1e6 for r in rs], color=c, s=22, label=fam)
        ax.scatter(
            x, [r["prior_s"] * 1e6 for r in rs], facecolors="none", edgecolors=c, s=22, alpha=0.5
        )
    lo = min(min(r["device_s"], r["predicted_s"], r["prior_s"]) for r in rows) * 1e6 / 1.5
    hi = max(max(r["device_s"], r["predicted_s"], r["prior_s"]) for r in rows) * 1e6 * 1.5
    ax.plot([lo, hi], [lo, hi], "k-", lw=0.8)
    for f in (0.5, 2.0):
        ax.plot([lo, hi], [lo * f, hi * f], "k:", lw=0.6)
    ax.set(xscale="log", yscale="log", xlim=(lo, hi), ylim=(lo, hi), title=title,
           xlabel="measured device time (us, CUPTI)", ylabel="predicted (us)")  # fmt: skip
    ax.legend(fontsize=7, title="filled: calibrated, hollow: priors", title_fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _repeat(path: pathlib.Path) -> dict | None:
    """The same programs timed by another process (``gpu_repeat/<name>``): how far two
    measurements of one program lie apart, |log(ratio)| of the device times."""
    other = path.parent / "gpu_repeat" / path.name
    if not other.exists():
        return None
    with open(path, newline="") as fa, open(other, newline="") as fb:
        a = {r["program"]: float(r["device_s"]) for r in csv.DictReader(fa) if r["device_s"]}
        b = {r["program"]: float(r["device_s"]) for r in csv.DictReader(fb) if r["device_s"]}
    d = np.abs(np.log([a[k] / b[k] for k in a if k in b]))
    return {"programs": int(d.size), "median_abs_log_ratio": float(np.median(d)),
            "p90_abs_log_ratio": float(np.percentile(d, 90)), "file": str(other.relative_to(ROOT))}  # fmt: skip


def report(args) -> None:
    paths = sorted(pathlib.Path(args.out).glob("gpu_measured_*_s*.csv"))
    paths = [p for p in paths if not p.stem.endswith("_predicted")]
    if args.measured:
        paths = [pathlib.Path(m) for m in args.measured]
    if not paths:
        raise SystemExit(f"no measurements (gpu_measured_<gpu>_s<seed>.csv) in {args.out}")
    for path in paths:
        summary, rows = predict_measured(path, args.gpu)
        out = path.with_name(path.stem + "_predicted.csv")
        with open(out, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
        summary["command"] = "python experiments/gpu_measured.py"
        summary["repeat"] = _repeat(path)
        path.with_name(path.stem + "_summary.json").write_text(json.dumps(summary, indent=1))
        _plot(rows, path.with_suffix(".png"), f"{summary['device_kind']}: {summary['programs']} random "
              f"programs (seed {summary['seed']})")  # fmt: skip
        for name in ("all", "at_least_50us"):
            b = summary[name]
            print(f"{path.name} {name}: median {b['calibrated']['median']:.1%} p90 "
                  f"{b['calibrated']['p90']:.1%} (priors {b['priors']['median']:.1%} / "
                  f"{b['priors']['p90']:.1%}), n {b['calibrated']['n']}, better than priors "
                  f"{b['better_than_priors']:.0%}, coverage {b['interval_coverage']:.0%}, "
                  f"predicted/measured {b['median_predicted_over_measured']:.2f}")  # fmt: skip
        if summary["repeat"]:
            rep = summary["repeat"]
            print(f"  repeat: {rep['programs']} programs timed twice lie {rep['median_abs_log_ratio']:.1%} "
                  f"apart at the median, {rep['p90_abs_log_ratio']:.1%} at p90")  # fmt: skip
        for fam, b in summary["per_family"].items():
            if b["calibrated"]["n"]:
                print(
                    f"  {fam:12s} n {b['calibrated']['n']:3d} median {b['calibrated']['median']:.0%} "
                    f"(priors {b['priors']['median']:.0%}) ratio {b['median_predicted_over_measured']:.2f}"
                )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--measure", action="store_true", help="time the programs on this GPU")
    ap.add_argument("--seed", type=int, default=20261204)
    ap.add_argument("--n", type=int, default=108)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--budget-s", type=float, default=420.0, help="wall-clock budget of --measure")
    ap.add_argument("--out", default=str(DOCS))
    ap.add_argument(
        "--gpu", default=None, help="the measured GPU's catalog name (default: from jax)"
    )
    ap.add_argument("--allow-cpu", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("measured", nargs="*", help="measurement CSVs (default: every one in --out)")
    ap.add_argument(
        "--only", default=None, help="time only programs whose label matches this regex"
    )
    args = ap.parse_args()
    if args.measure:
        measure(args)
    else:
        report(args)


if __name__ == "__main__":
    main()
