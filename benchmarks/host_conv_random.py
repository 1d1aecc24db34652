"""Random NHWC convolutions on this machine, timed and predicted: how well a host calibration
carries over to convolution layers nobody put in the calibration suite.

    python benchmarks/host_conv_random.py                              # the saved calibration
    python benchmarks/host_conv_random.py --calibration a.json b.json  # compare calibrations
    python benchmarks/host_conv_random.py --n 40 --seed 3              # quicker, another draw

Draws ``--n`` dense convolutions (batch 1-16, 8-56 pixels square, 1-128 input and 8-128 output
features, 1x1, 3x3 or 5x5 windows, stride 1 or 2, ``SAME`` padding, fp32) from ``--seed``,
times each with a plain ``jax.jit`` loop (the lower of two back-to-back timings, each the
median of a loop of at least 0.04 s),
and predicts each with ``perfjax.predict(..., device="host")`` for every calibration given
(``saved``: the host calibration saved on this machine; ``priors``: none). Prints and writes the
median and p90 absolute percentage error and the median ratio of predicted to measured time per
calibration (benchmarks/results/host_conv_random.csv, one row per convolution and calibration).
~2 minutes on 2 cores for 90 convolutions.
"""

from __future__ import annotations

import argparse
import pathlib
import sys

import jax
import jax.numpy as jnp
import numpy as np

import perfjax

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
from _machine import result_csv, time_loop  # noqa: E402

S = jax.ShapeDtypeStruct


def draw(seed: int, n: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    return [
        dict(b=int(rng.choice([1, 2, 4, 8, 16])), hw=int(rng.choice([8, 14, 28, 32, 56])),
             cin=int(rng.choice([1, 3, 4, 8, 16, 32, 64, 128])),
             cout=int(rng.choice([8, 16, 32, 48, 64, 128])), k=int(rng.choice([1, 3, 5])),
             stride=int(rng.choice([1, 1, 2])))
        for _ in range(n)
    ]  # fmt: skip


def conv(stride: int):
    def fn(x, w):
        return jax.lax.conv_general_dilated(x, w, (stride, stride), "SAME",
                                            dimension_numbers=("NHWC", "HWIO", "NHWC"))  # fmt: skip

    return fn


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=90)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--calibration", nargs="+", default=["saved", "priors"],
                    help="calibration JSON files, 'saved' or 'priors'")  # fmt: skip
    args = ap.parse_args()
    cals = {c: (None if c == "saved" else False if c == "priors" else c) for c in args.calibration}
    rows = []
    for i, c in enumerate(draw(args.seed, args.n)):
        fn = conv(c["stride"])
        shapes = (S((c["b"], c["hw"], c["hw"], c["cin"]), jnp.float32),
                  S((c["k"], c["k"], c["cin"], c["cout"]), jnp.float32))  # fmt: skip
        f, xs = jax.jit(fn), [jnp.ones(s.shape, s.dtype) for s in shapes]
        jax.block_until_ready(f(*xs))  # compiled before it is timed
        measured = min(time_loop(f, xs, min_s=0.04) for _ in range(2))
        for name, cal in cals.items():
            kw = {} if cal is None else {"calibration": cal}
            predicted = perfjax.predict(fn, shapes, device="host", **kw).time_s
            rows.append({**c, "calibration": name, "measured_s": measured,
                         "predicted_s": predicted})  # fmt: skip
        print(f"[{i + 1}/{args.n}] {c}: {measured * 1e6:.0f} us", flush=True)
    cmd = "python benchmarks/host_conv_random.py" + (f" --n {args.n}" if args.n != 90 else "")
    cmd += f" --seed {args.seed}" if args.seed != 1 else ""
    cmd += " --calibration " + " ".join(args.calibration)
    with result_csv(
        "host_conv_random.csv",
        cmd,
        "NHWC fp32 convolutions; lower of 2 back-to-back timings' medians",
    ) as wr:
        wr.writerow(list(rows[0]))
        for r in rows:
            wr.writerow([f"{v:.6g}" if isinstance(v, float) else v for v in r.values()])
    for name in cals:
        ratio = np.array([r["predicted_s"] / r["measured_s"] for r in rows
                          if r["calibration"] == name])  # fmt: skip
        ape = np.abs(ratio - 1)
        print(f"{name}: median APE {np.median(ape):.1%}, p90 {np.percentile(ape, 90):.1%}, "
              f"median predicted/measured {np.median(ratio):.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
