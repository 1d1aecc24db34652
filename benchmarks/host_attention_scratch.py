"""The scratch XLA:CPU's fused attention allocates per call, traced at the C library.

    python benchmarks/host_attention_scratch.py        # ~2 min on 2 cores; needs a C compiler
    python benchmarks/host_attention_scratch.py --out host_attention_scratch_epyc.csv

From a batch of 2, XLA:CPU compiles attention (``softmax(q·kᵀ)·v``) to one YNNPACK fusion,
which allocates its intermediates with the C library's ``malloc`` on every call. Which blocks,
and how large, decides how much memory the call streams: written as two einsums over (batch,
tokens, heads, head size) inputs (the held-out generator's attention, the ``bthd`` form) or by
Flax's ``nn.dot_product_attention`` (``flax``), the second product multiplies by a transposed,
computed rhs (vᵀ·pᵀ); written over (batch, heads, tokens, head size) inputs (``bhtd``) it does
not.

A small shared library, compiled here with ``cc`` and preloaded into a child process, logs every
``malloc`` and ``posix_memalign`` of at least 256 KiB (and the ``free`` of such a ``malloc``);
the third call of each program is traced (after two warm-up calls). XLA:CPU allocates its own buffers (outputs, its temporary block) with
``posix_memalign``, the library its scratch with ``malloc``. Recorded per configuration: the
``malloc`` blocks that call allocated (how many, how many of at least the scores' size, their
total and the largest, in units of the scores' float32 size b x h x t x s x 4 bytes:
``score_mib``), the most of them allocated at once (``peak_live_mib``: the tracer logs the
frees of those blocks too), perfjax's ``Kernels.scratch_bytes`` for the program (the CPU
policy's ``FusionPolicy.attention_scratch``) in the same units, and whether the policy takes
that scratch to fault on every call (``model_faulting``: ``Kernels.fresh_scratch_bytes``, from
``FusionPolicy.scratch_fault_min_bytes``, 64 MiB: glibc hands the top of its heap back to the
system once more than that is free there).

Writes benchmarks/results/host_attention_scratch.csv (``--out``: another name there).
"""

from __future__ import annotations

import itertools
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

FORMS = ("bthd", "flax", "bhtd")
DTYPES = ("float32", "bfloat16")
#: (batch, tokens, heads, head size): the held-out generator's attention sizes, from batch 2.
GRID = [c for c in itertools.product((2, 4, 8), (64, 128, 256, 512), (1, 2, 4, 8), (32, 64))
        if c[0] * c[1] * c[1] * c[2] * 4 >= 2**18]  # fmt: skip
MIN_BYTES = 2**18

_SHIM = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <unistd.h>
static void *(*real_malloc)(size_t);
static void (*real_free)(void *);
static int (*real_memalign)(void **, size_t, size_t);
static __thread int busy;
/* The traced malloc blocks still allocated, so that their frees can be logged too. */
static void *volatile live[4096];
static volatile int used; /* entries ever used: frees scan no further */
static void note(const char *how, size_t n, void *p) {
  if (!busy) {
    busy = 1;
    char b[96];
    int l = snprintf(b, sizeof b, "%%s %%zu %%p\n", how, n, p);
    write(2, b, l);
    busy = 0;
  }
}
void *malloc(size_t n) {
  if (!real_malloc) real_malloc = dlsym(RTLD_NEXT, "malloc");
  void *p = real_malloc(n);
  if (n >= %d) {
    for (int i = 0; i < 4096; i++)
      if (!live[i]) { live[i] = p; if (i >= used) used = i + 1; break; }
    note("MALLOC", n, p);
  }
  return p;
}
void free(void *p) {
  if (!real_free) real_free = dlsym(RTLD_NEXT, "free");
  if (p)
    for (int i = 0; i < used; i++)
      if (live[i] == p) { live[i] = 0; note("FREE", 0, p); break; }
  real_free(p);
}
int posix_memalign(void **p, size_t a, size_t n) {
  if (!real_memalign) real_memalign = dlsym(RTLD_NEXT, "posix_memalign");
  int r = real_memalign(p, a, n);
  if (n >= %d) note("MEMALIGN", n, *p);
  return r;
}
"""


def _program(form: str):
    """The attention written as ``form`` (a key of :data:`FORMS`)."""
    import flax.linen as nn
    from host_thunk_dag import _attention_bhtd, _attention_bthd

    return {"bthd": _attention_bthd, "bhtd": _attention_bhtd, "flax": nn.dot_product_attention}[
        form
    ]


def _shape(form: str, b: int, t: int, h: int, d: int) -> tuple[int, ...]:
    return (b, h, t, d) if form == "bhtd" else (b, t, h, d)


def _child(form: str, dtype: str) -> None:
    """Runs the grid in this (traced) process; marks each traced call on stderr."""
    import jax
    import jax.numpy as jnp

    fn = _program(form)
    for b, t, h, d in GRID:
        x = jnp.full(_shape(form, b, t, h, d), 0.1, jnp.dtype(dtype))
        f = jax.jit(fn)
        for _ in range(2):
            jax.block_until_ready(f(x, x, x))
        os.write(2, f"CALL {b} {t} {h} {d}\n".encode())
        jax.block_until_ready(f(x, x, x))
        os.write(2, b"END\n")


def _model_scratch(form: str, dtype: str, b: int, t: int, h: int, d: int) -> tuple[float, float]:
    import jax
    import jax.numpy as jnp

    from perfjax.fusion._kernels import kernels_for
    from perfjax.lowering._staging import program_for

    x = jax.ShapeDtypeStruct(_shape(form, b, t, h, d), jnp.dtype(dtype))
    k = kernels_for(program_for(_program(form), (x, x, x), None, "cpu"), "cpu")
    a = k.arrays()
    return float(a["scratch_bytes"].sum()), float(a["fresh_scratch_bytes"].sum())


def _whole(blocks: list[int], scores: int) -> bool:
    return sum(n >= scores for n in blocks) >= 4


def main() -> None:
    from _machine import out_option, result_csv

    out, command = out_option(__doc__, "host_attention_scratch.py", "host_attention_scratch.csv")
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        sys.exit("host_attention_scratch.py needs a C compiler (cc or gcc) to build its tracer")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        src, lib = pathlib.Path(tmp, "trace.c"), pathlib.Path(tmp, "trace.so")
        src.write_text(_SHIM % (MIN_BYTES, MIN_BYTES))
        subprocess.run([cc, "-shared", "-fPIC", "-O2", "-o", str(lib), str(src), "-ldl"],
                       check=True)  # fmt: skip
        for form, dtype in itertools.product(FORMS, DTYPES):
            env = dict(os.environ, LD_PRELOAD=str(lib))
            run = subprocess.run([sys.executable, __file__, "--child", form, dtype], env=env,
                                 capture_output=True, text=True, check=True)  # fmt: skip
            blocks: list[int] | None = None
            held: dict[str, int] = {}
            for line in run.stderr.splitlines():
                if line.startswith("CALL "):
                    b, t, h, d = map(int, line.split()[1:])
                    blocks, held, now, peak = [], {}, 0, 0
                elif line == "END" and blocks is not None:
                    rows.append((form, dtype, b, t, h, d, blocks, peak))
                    blocks = None
                elif line.startswith("MALLOC ") and blocks is not None:
                    _, n, ptr = line.split()
                    blocks.append(int(n))
                    held[ptr] = int(n)
                    now += int(n)
                    peak = max(peak, now)
                elif line.startswith("FREE ") and blocks is not None:
                    now -= held.pop(line.split()[2], 0)
            print(f"{form} {dtype}: {sum(1 for r in rows if r[:2] == (form, dtype))} traced")
    with result_csv(out, command,
                    f"malloc blocks of >= {MIN_BYTES // 1024} KiB (the library's scratch; XLA's own "
                    "buffers come from posix_memalign) allocated by the third call, traced by a "
                    "preloaded library; sizes in units of the scores' float32 size") as w:  # fmt: skip
        w.writerow(["form", "dtype", "batch", "seq", "heads", "head_dim", "score_rows",
                    "score_mib", "blocks", "score_sized_blocks", "total_over_scores",
                    "largest_over_scores", "peak_live_mib", "model_scratch_over_scores",
                    "model_faulting"])  # fmt: skip
        for form, dtype, b, t, h, d, blocks, peak in rows:
            scores = b * h * t * t * 4
            model, faulting = _model_scratch(form, dtype, b, t, h, d)
            w.writerow([form, dtype, b, t, h, d, b * h * t, f"{scores / 2**20:.3f}", len(blocks),
                        sum(n >= scores for n in blocks), f"{sum(blocks) / scores:.2f}", f"{max(blocks, default=0) / scores:.3f}",
                        f"{peak / 2**20:.1f}", f"{model / scores:.1f}", int(faulting > 0)])  # fmt: skip
    # The library materialises the whole scores four times where four of its blocks (or
    # more) are the scores' size.
    whole = [r for r in rows if _whole(r[6], r[2] * r[4] * r[3] * r[3] * 4)]
    past = sum(r[7] >= 64 * 2**20 for r in rows)
    print(
        f"{len(whole)} of {len(rows)} calls allocate four score-sized blocks; {past} hold "
        "64 MiB or more at once"
    )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _child(sys.argv[2], sys.argv[3])
    else:
        main()
