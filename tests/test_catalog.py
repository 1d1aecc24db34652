"""The built-in device catalog (perfjax/devicemodels/catalog.toml) loads, is complete and is sane."""

import pathlib

import pytest
import tomllib

from perfjax.devicemodels._spec import FAMILIES, PRECISIONS, load_spec_file

CATALOG = pathlib.Path(__file__).resolve().parents[1] / "perfjax" / "devicemodels" / "catalog.toml"

REQUIRED = [
    "v100", "a100-40gb", "a100-80gb", "h100", "h200", "rtx-4090", "l4", "mi250x", "mi300x",
    "tpu-v3", "tpu-v4", "tpu-v5e", "tpu-v5p", "tpu-v6e", "edge-tpu",
    "apple-m1", "apple-m1-ane", "apple-m2", "apple-m2-ane",
    "xeon-8380", "xeon-8480", "epyc-7763", "epyc-9654",
    # GPUs with public measured timings (NeuSight, DeepBench)
    "p4", "p100", "t4", "v100-pcie", "a100-pcie-40gb", "a100-pcie-80gb", "gtx-1080ti", "titan-xp",
]  # fmt: skip


@pytest.fixture(scope="module")
def specs():
    return {s.name: s for s in load_spec_file(CATALOG)}


def test_required_devices_present(specs):
    missing = [n for n in REQUIRED if n not in specs]
    assert not missing, missing
    assert len(specs) >= 25


def test_names_are_lowercase_hyphen(specs):
    for name in specs:
        assert name == name.lower() and " " not in name and "_" not in name, name


def test_every_entry_has_source_and_description(specs):
    for name, spec in specs.items():
        assert spec.source.strip(), name
        assert spec.description.strip(), name
        assert spec.vendor.strip(), name
        assert spec.family in FAMILIES, name


def test_no_name_field_in_tables():
    raw = tomllib.loads(CATALOG.read_text())
    for key, table in raw.items():
        assert "name" not in table, key


def test_peaks_positive(specs):
    for name, spec in specs.items():
        assert spec.matrix_flops_per_s or spec.vector_flops_per_s, name
        for unit in (spec.matrix_flops_per_s, spec.vector_flops_per_s):
            for prec, value in unit.items():
                assert prec in PRECISIONS, (name, prec)
                assert value > 0, (name, prec)
        for field in ("memory_bytes_per_s", "num_cores", "clock_hz", "cache_bytes", "cache_bytes_per_s",
                      "launch_overhead_s", "tdp_w", "host_link_bytes_per_s"):  # fmt: skip
            assert getattr(spec, field) > 0, (name, field)
        assert 0 <= spec.idle_w < spec.tdp_w, name
        assert spec.matrix_tile >= 1, name


def test_magnitudes_plausible(specs):
    """Catches unit slips (TFLOP/s written as FLOP/s, GB as bytes...)."""
    for name, spec in specs.items():
        for unit in (spec.matrix_flops_per_s, spec.vector_flops_per_s):
            for prec, value in unit.items():
                assert 1e10 <= value <= 1e16, (name, prec, value)
        assert 1e8 <= spec.memory_bytes_per_s <= 2e13, name
        assert 1e8 <= spec.clock_hz <= 5e9, name
        assert 1e-7 <= spec.launch_overhead_s <= 1e-3, name
        assert spec.memory_bytes == 0 or 1e9 <= spec.memory_bytes <= 4e12, name
        assert 1e5 <= spec.cache_bytes <= 1e9, name


@pytest.mark.parametrize(
    "name, unit, precision, expected",
    [
        ("h100", "matrix", "bf16", 989.4e12),
        ("a100-80gb", "matrix", "bf16", 312e12),
        ("tpu-v4", "matrix", "bf16", 275e12),
        ("mi300x", "matrix", "bf16", 1307.4e12),
        ("v100", "matrix", "fp16", 125e12),
        ("h100", "vector", "fp32", 66.9e12),
        ("a100-80gb", "matrix", "tf32", 156e12),
        ("tpu-v5e", "matrix", "bf16", 197e12),
        ("tpu-v6e", "matrix", "bf16", 918e12),
        ("rtx-4090", "vector", "fp32", 82.6e12),
        ("t4", "matrix", "fp16", 65e12),
        ("a100-pcie-40gb", "vector", "fp32", 19.5e12),
    ],
)
def test_reference_peaks(specs, name, unit, precision, expected):
    table = getattr(specs[name], f"{unit}_flops_per_s")
    assert table[precision] == pytest.approx(expected, rel=0.02)


@pytest.mark.parametrize(
    "name, expected",
    [("h100", 3.35e12), ("a100-80gb", 2.039e12), ("h200", 4.8e12), ("mi300x", 5.3e12), ("tpu-v4", 1.2e12),
     ("v100-pcie", 900e9), ("p100", 732e9), ("t4", 320e9), ("p4", 192e9)],
)  # fmt: skip
def test_reference_memory_bandwidth(specs, name, expected):
    assert specs[name].memory_bytes_per_s == pytest.approx(expected, rel=0.02)


def test_neusight_fp32_peaks_agree(specs):
    """NeuSight device_configs FP32 GFLOP/s (P4/P100 list max-boost clocks, so allow 5 %)."""
    for name, gflops in [("v100-pcie", 14029), ("a100-pcie-40gb", 19492), ("t4", 8141), ("p4", 5699),
                         ("p100", 9519)]:  # fmt: skip
        assert specs[name].vector_flops_per_s["fp32"] == pytest.approx(gflops * 1e9, rel=0.05), name


def test_precision_support(specs):
    # Volta: FP16 tensor cores only.
    assert "bf16" not in specs["v100"].precisions()
    assert "bf16" not in specs["v100-pcie"].precisions()
    with pytest.raises(ValueError):
        specs["v100"].peak_flops_per_s("bf16")
    # TF32 only from Ampere on; FP8 only on Hopper / Ada / Blackwell / CDNA3 and later.
    for name in ("v100", "v100-pcie", "t4", "p4", "p100", "gtx-1080ti", "titan-xp"):
        assert "tf32" not in specs[name].precisions(), name
    fp8 = {n for n, s in specs.items() if "fp8" in s.precisions()}
    assert fp8 <= {
        "h100",
        "h200",
        "rtx-4090",
        "l4",
        "l40s",
        "b200",
        "gb200",
        "gb300",
        "mi300x",
        "mi325x",
        "mi355x",
    }, fp8
    # Pre-Volta GPUs have no tensor cores.
    for name in ("p4", "p100", "gtx-1080ti", "titan-xp"):
        assert not specs[name].matrix_flops_per_s, name
    # TPU MXUs do not do fp32; AMX only on Sapphire Rapids; edge NPUs do int8.
    for name, spec in specs.items():
        if spec.family == "tpu":
            assert "fp32" not in spec.matrix_flops_per_s, name
            assert "bf16" in spec.matrix_flops_per_s, name
        if spec.family == "cpu" and name != "xeon-8480":
            assert not spec.matrix_flops_per_s, name
        if spec.family == "npu":
            assert "int8" in spec.matrix_flops_per_s, name
    assert set(specs["xeon-8480"].matrix_flops_per_s) == {"bf16", "int8"}


def test_blackwell_and_cdna4_figures(specs):
    # Dense Blackwell tensor peaks are half the datasheets' sparse figures: bf16 = 2 x tf32, fp8 = 2 x bf16.
    for name in ("b200", "gb200", "gb300"):
        m = specs[name].matrix_flops_per_s
        assert m["bf16"] == pytest.approx(2 * m["tf32"]) and m["fp8"] == pytest.approx(
            2 * m["bf16"]
        ), name
    # The XLA measured tables' best GEMMs stay below these peaks (B200 bf16 1,670 TFLOP/s; gfx950 1,426).
    assert 1.67e15 < specs["b200"].matrix_flops_per_s["bf16"] < 2 * 1.67e15
    assert 1.43e15 < specs["mi355x"].matrix_flops_per_s["bf16"] < 2 * 1.43e15
    # Blackwell Ultra trades FP64 for FP4.
    assert specs["gb300"].matrix_flops_per_s["fp64"] < specs["b200"].matrix_flops_per_s["fp64"] / 10


def test_matrix_tiles(specs):
    assert specs["tpu-v6e"].matrix_tile == 256
    for name in ("tpu-v3", "tpu-v4", "tpu-v5e", "tpu-v5p"):
        assert specs[name].matrix_tile == 128, name
    assert specs["edge-tpu"].matrix_tile == 64


def test_h100_bf16_ridge_point(specs):
    h100 = specs["h100"]
    assert 250 < h100.peak_flops_per_s("bf16") / h100.memory_bytes_per_s < 350


def test_h100_ridge_point(specs):
    # The ridge uses the best floating-point peak of 16 bits or more: bf16 989.4e12 / 3.35e12 B/s.
    assert 250 < specs["h100"].ridge_flops_per_byte < 350


def test_aliases_unique_and_not_names(specs):
    seen = {}
    names = set(specs)
    for name, spec in specs.items():
        for alias in spec.aliases:
            key = alias.lower()
            assert key not in names, (name, alias)
            assert key not in seen, (alias, name, seen.get(key))
            seen[key] = name
