"""What a jitted call's input arrays cost on the host when its kernels run on XLA:CPU's threads.

    python benchmarks/host_call_inputs_busy.py        # ~3 min on 2 cores

``host_call_buffers.py`` prices an input array (0.32-0.42 us) on calls whose only kernel is a
small loop. Whether an input costs the same when the call's kernels run on XLA:CPU's worker
and thread pool while the caller handles the inputs is what this measures, two ways:

* ``synthetic``: N arrays of 16 fp32 floats (N = 0, 8, 32, 64), each read once (``x[0]``,
  summed into the output), beside one first kernel: none (the sum alone), a 4096-float
  ``tanh(x) * 2`` loop, a 262144-float ``sigmoid(x) * x`` loop (split over the pool), a 7x7
  stride-2 convolution of 2 x 32 x 32 x 3 into 16 features (a ResNet stem), a 3x3 convolution
  of 2 x 8 x 8 x 16 into 16 (Eigen's narrow path) and a 256^3 GEMM. Per kernel, the time's
  least-squares slope in N: microseconds per input, measured and predicted.
* ``hf``: transformers Flax models of ``hf_models.py`` (``--hf`` names them) with their
  parameters passed as inputs (as ``host_generalization.py`` times them) and baked into the
  program as constants: the difference over the number of parameter arrays, measured and
  predicted. It holds more than the inputs' handling: with constant parameters XLA may fold
  work into the executable at compile time (a weight's transpose, a reshape's copy).

Predictions are perfjax's uncalibrated host model (``CALL_INPUT_S`` in
``perfjax/devicemodels/_cpu.py``). Times are medians of 5 interleaved rounds of a plain
``jax.jit`` loop of at least 0.05 s (0.1 s for the models).
Writes benchmarks/results/host_call_inputs_busy.csv (``--out``: another name there).
"""

from __future__ import annotations

import argparse
import functools
import pathlib
import sys

import jax
import jax.numpy as jnp
import numpy as np

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT))
from _machine import interleaved_medians, out_option, result_csv, time_loop  # noqa: E402
from host_call_buffers import slope_us, timed_cases  # noqa: E402

import perfjax  # noqa: E402

ROUNDS = 5
COUNTS = (0, 8, 32, 64)
HF_MODELS = ("resnet", "resnet-bottleneck", "albert", "bert", "gpt2")
_NHWC = ("NHWC", "HWIO", "NHWC")


def _conv(stride: int):
    return lambda x, w: jax.lax.conv_general_dilated(
        x, w, (stride, stride), "SAME", dimension_numbers=_NHWC
    )


#: first kernel -> (function of (x, w), x's shape, w's shape); None: no kernel but the sum.
KERNELS = {
    "none": None,
    "loop_4096": (lambda x, w: jnp.tanh(x) * 2.0, (4096,), (1,)),
    "split_loop_262144": (lambda x, w: jax.nn.sigmoid(x) * x, (262144,), (1,)),
    "conv_stem_7x7": (_conv(2), (2, 32, 32, 3), (7, 7, 3, 16)),
    "conv_narrow_3x3": (_conv(1), (2, 8, 8, 16), (3, 3, 16, 16)),
    "gemm_256": (lambda x, w: x @ w, (256, 256), (256, 256)),
}


def _materialize(shapes, seed: int = 0):
    rng = np.random.default_rng(seed)
    return tuple(jnp.asarray(rng.normal(size=s) * 0.1, jnp.float32) for s in shapes)


def synthetic_case(kernel: str, n: int):
    """(function, arguments) of ``kernel`` beside ``n`` input arrays each read once."""
    spec = KERNELS[kernel]
    extra = _materialize([(16,)] * n, seed=1)
    if spec is None:
        return (lambda *xs: sum((x[0] for x in xs), jnp.float32(1.0))), extra
    f, x_shape, w_shape = spec
    x, w = _materialize([x_shape, w_shape])

    def fn(x, w, *xs):
        return f(x, w) + sum((e[0] for e in xs), jnp.float32(0.0))

    return fn, (x, w, *extra)


def _hf_cases(names):
    import hf_models

    sys.path.insert(0, str(ROOT / "experiments"))
    from host_generalization import prepare

    out = []
    for name in names:
        fn, inputs = hf_models.build(name)
        f, args = prepare(fn, inputs)
        params, rest = args[0], tuple(args[1:])

        def baked(*xs, fn=fn, params=params):
            return fn(params, *xs)

        g = jax.jit(baked)
        jax.block_until_ready(g(*rest))
        arrays = len(jax.tree.leaves(params))
        p_in = perfjax.predict(fn, inputs, device="host", calibration=False).time_s
        p_const = perfjax.predict(baked, tuple(inputs[1:]), device="host", calibration=False)
        out.append((name, arrays, (f, args), (g, rest), p_in, p_const.time_s))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(add_help=False)
    ap.add_argument("--hf", nargs="*", default=list(HF_MODELS))
    known, rest = ap.parse_known_args()
    sys.argv = [sys.argv[0], *rest]
    name, command = out_option(__doc__, "host_call_inputs_busy.py", "host_call_inputs_busy.csv")
    if known.hf != list(HF_MODELS):
        command += " --hf " + " ".join(known.hf)
    builds = {kernel: functools.partial(synthetic_case, kernel) for kernel in KERNELS}
    cases, medians = timed_cases(builds, COUNTS)
    hf = _hf_cases(known.hf) if known.hf else []
    timers = []
    for _, _, (f, a), (g, b), _, _ in hf:
        timers += [lambda f=f, a=a: time_loop(f, a, min_s=0.1),
                   lambda g=g, b=b: time_loop(g, b, min_s=0.1)]  # fmt: skip
    hf_medians = interleaved_medians(timers, ROUNDS) if timers else []

    what = (f"synthetic: arrays of 16 fp32 floats beside one first kernel; hf: parameters as "
            f"inputs vs constants; medians of {ROUNDS} interleaved rounds; perfjax's "
            f"uncalibrated host predictions")  # fmt: skip
    header = ["part", "case", "arrays", "measured_us", "predicted_us", "constants_measured_us",
              "constants_predicted_us", "measured_us_per_array", "predicted_us_per_array"]  # fmt: skip
    with result_csv(name, command, what) as wr:
        wr.writerow(header)
        for (kernel, n, _, _, prior), t in zip(cases, medians, strict=True):
            wr.writerow(["synthetic", kernel, n, f"{t * 1e6:.1f}", f"{prior * 1e6:.1f}",
                         "", "", "", ""])  # fmt: skip
        for kernel in KERNELS:
            rows = [(c[1], t, c[4]) for c, t in zip(cases, medians, strict=True) if c[0] == kernel]
            n, t, p = zip(*rows, strict=True)
            wr.writerow(["synthetic_slope", kernel, "", "", "", "", "",
                         f"{slope_us(n, t):.2f}", f"{slope_us(n, p):.2f}"])  # fmt: skip
        for i, (model, arrays, _, _, p_in, p_const) in enumerate(hf):
            t_in, t_const = hf_medians[2 * i], hf_medians[2 * i + 1]
            wr.writerow(["hf", model, arrays, f"{t_in * 1e6:.1f}", f"{p_in * 1e6:.1f}",
                         f"{t_const * 1e6:.1f}", f"{p_const * 1e6:.1f}",
                         f"{(t_in - t_const) * 1e6 / arrays:.2f}",
                         f"{(p_in - p_const) * 1e6 / arrays:.2f}"])  # fmt: skip
    print(f"{'first kernel':>18} {'us per input measured':>22} {'predicted':>10}")
    for kernel in KERNELS:
        rows = [(c[1], t, c[4]) for c, t in zip(cases, medians, strict=True) if c[0] == kernel]
        n, t, p = zip(*rows, strict=True)
        print(f"{kernel:>18} {slope_us(n, t):22.2f} {slope_us(n, p):10.2f}")
    for i, (model, arrays, _, _, p_in, p_const) in enumerate(hf):
        t_in, t_const = hf_medians[2 * i], hf_medians[2 * i + 1]
        print(f"{model:>18}: {arrays} parameter arrays; as inputs {t_in * 1e6:.0f} us, as "
              f"constants {t_const * 1e6:.0f} us ({(t_in - t_const) * 1e6 / arrays:.2f} us per "
              f"array; predicted {(p_in - p_const) * 1e6 / arrays:.2f})")  # fmt: skip


if __name__ == "__main__":
    main()
