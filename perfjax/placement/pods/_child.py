"""Compiles a sharded StableHLO module for N emulated CPU devices and keeps XLA's partitioned
per-device module (run as a script by ``predict_pod``: it must set ``XLA_FLAGS`` before jax is
imported, so it imports nothing from perfjax).

Usage: python _child.py MODULE.mlir NUM_DEVICES DUMP_DIR [--full]  (prints one JSON line:
XLA's memory statistics with ``--full``, which compiles to the end; ``{}`` otherwise)
"""

import json
import os
import sys
import threading

#: Held by whichever thread prints the one JSON line and ends the process: the watcher below and
#: a compilation that finishes first must not both print (their lines interleaved otherwise).
_PRINTING = threading.Lock()


def _print_and_exit(stats: dict) -> None:
    with _PRINTING:
        print(json.dumps(stats), flush=True)
        os._exit(0)


def _exit_when_partitioned(dump: str) -> None:
    """Ends the process once XLA has written the partitioned module: the rest of compilation
    (fusion, code generation) is not needed and takes most of the time."""
    import glob
    import time

    seen = None
    while True:
        files = glob.glob(os.path.join(dump, "*after_spmd-partitioning*"))
        sizes = tuple(sorted(os.path.getsize(f) for f in files))
        if len(files) >= 2 and sizes == seen:
            _print_and_exit({})
        seen = sizes if len(files) >= 2 else None
        time.sleep(0.1)


def main() -> None:
    module_path, n, dump = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    full = len(sys.argv) > 4 and sys.argv[4] == "--full"
    if not full:
        threading.Thread(target=_exit_when_partitioned, args=(dump,), daemon=True).start()
    os.environ["XLA_FLAGS"] = (
        f"--xla_force_host_platform_device_count={n} --xla_dump_to={dump} "
        "--xla_dump_hlo_as_proto --xla_dump_hlo_as_text "
        "--xla_dump_hlo_pass_re=^spmd-partitioning$"
    )
    os.environ["JAX_PLATFORMS"] = "cpu"
    import jax
    import numpy as np
    from jax._src import compiler
    from jax._src.interpreters import mlir
    from jax._src.lib import xla_client as xc
    from jax._src.lib.mlir import ir

    devices = jax.devices()[:n]
    with mlir.make_ir_context():
        module = ir.Module.parse(open(module_path).read())
        client = devices[0].client
        opts = compiler.get_compile_options(
            num_replicas=1,
            num_partitions=n,
            device_assignment=np.array(devices).reshape(1, n),
            backend=client,
        )
        opts.executable_build_options.use_spmd_partitioning = True
        opts.executable_build_options.use_shardy_partitioner = True
        exe = compiler.backend_compile_and_load(
            client, module, xc.DeviceList(tuple(devices)), opts, []
        )
    stats = exe.get_compiled_memory_stats()
    fields = ("argument_size_in_bytes", "output_size_in_bytes", "alias_size_in_bytes",
              "temp_size_in_bytes")  # fmt: skip
    _print_and_exit({f: int(getattr(stats, f)) for f in fields})


if __name__ == "__main__":
    main()
