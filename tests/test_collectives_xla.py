"""XLA's collective table and the calibrated collective model: loader conversions, the shipped fit,
a held-out fit, hand-derived values, monotonicity, gradients and errors."""

import importlib.resources
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from perfjax.placement import (
    FIT_FAMILIES,
    FIT_PARAMETERS,
    CollectiveFit,
    algorithm_times_s,
    best_algorithm,
    calibrated_algorithm_times_s,
    calibrated_time_s,
    choose_fit,
    collective_fit,
    collective_time_s,
    fit_collectives,
    fitted_family,
    from_mapping,
    injection_bandwidth_bytes_per_s,
    predict_xla,
    prior_fit,
    vendor_family,
    xla_collectives,
)

KIB, MIB = 2**10, 2**20


@pytest.fixture(scope="module")
def rows():
    return xla_collectives()


def _fit_file():
    text = (
        importlib.resources.files("perfjax.placement") / "data/collectives_fit.json"
    ).read_text()
    return json.loads(text)


# ---- loader ------------------------------------------------------------------------------------


def test_loader_rows_platforms_and_counts(rows):
    # 3,067 rows in XLA's table, 2 without a throughput (one each on GB200 and GB300) dropped.
    assert len(rows) == 3065
    assert rows.groupby("arch").size().to_dict() == {
        "gfx950": 441,
        "sm_100_B200": 330,
        "sm_100_GB200": 1147,
        "sm_103": 1147,
    }
    assert dict(zip(rows.arch, rows.platform)) == {
        "sm_100_B200": "8xb200-nvlink",
        "sm_100_GB200": "gb200-nvl72",
        "sm_103": "gb300-nvl72",
        "gfx950": "8xmi355x",
    }
    assert set(rows.family[rows.arch == "gfx950"]) == {"amd-infinity-fabric"}
    assert set(rows.family[rows.arch != "gfx950"]) == {"nvidia-nvlink"}
    assert (rows.time_s > 0).all() and np.isfinite(rows.time_s).all()


def test_loader_byte_conventions(rows):
    size, out, p = rows.tensor_size_bytes, rows.out_bytes, rows.group_size
    n = rows["nbytes"]
    ag = rows.kind == "all_gather"  # XLA's size is the gathered output: p shards
    assert np.array_equal(n[ag] * p[ag], size[ag]) and np.array_equal(size[ag], out[ag])
    rs = rows.kind == "reduce_scatter"  # the operand is the unscattered input: p x the output
    assert np.array_equal(n[rs], size[rs]) and np.array_equal(out[rs] * p[rs], size[rs])
    same = rows.kind.isin(["all_reduce", "all_to_all", "collective_permute"])
    assert np.array_equal(n[same], size[same]) and np.array_equal(out[same], size[same])


def test_loader_specific_rows():
    b200 = xla_collectives("sm_100_B200")
    # CSV row: all-to-all, F32, 131072 elements, 524288 bytes, 2 groups of 4, 3.696e-05 s.
    a2a = b200[
        (b200.kind == "all_to_all") & (b200.tensor_size_bytes == 524288) & (b200.group_size == 4)
    ]
    assert len(a2a) == 1
    r = a2a.iloc[0]
    assert (r["nbytes"], r["num_groups"], r["dtype"]) == (524288.0, 2, "F32")
    assert r.time_s == pytest.approx(3.696e-05)
    # An all-gather of 8 x 256 B: tensor_size 2048, operand 256 B.
    ag = b200[
        (b200.kind == "all_gather") & (b200.tensor_size_bytes == 2048) & (b200.group_size == 8)
    ]
    assert ag["nbytes"].tolist() == [256.0]
    ring = b200[b200.permute_pattern == "two-way-has-non-mutual"]
    assert set(ring.group_size) == {8} and set(ring.num_groups) == {1}
    assert ring.source_target_pairs.iloc[0].startswith("0->1;1->2;")
    assert set(xla_collectives(["gfx950"]).dtype) == {"BF16", "F32"}


def test_loader_errors():
    with pytest.raises(ValueError, match=r"unknown XLA arch 'sm_90' \(its rows are withheld"):
        xla_collectives("sm_90")
    with pytest.raises(ValueError, match=r"unknown XLA arch 'b200'.*valid: \['gfx950'"):
        xla_collectives(["gfx950", "b200"])
    bad = xla_collectives("gfx950").head(4).copy()
    bad.loc[bad.index[0], "nbytes"] = -8.0
    with pytest.raises(ValueError, match=r"nbytes must be finite and >= 0.*-8.0"):
        predict_xla(bad)
    with pytest.raises(ValueError, match=r"rows lack column\(s\) \['time_s'\]"):
        predict_xla(xla_collectives("gfx950").drop(columns="time_s"))
    with pytest.raises(ValueError, match=r"rows mix vendor families"):
        fit_collectives(xla_collectives(["gfx950", "sm_100_B200"]), steps=1)
    nv = collective_fit("nvidia-nvlink")
    with pytest.raises(ValueError, match=r"never shared between vendor families"):
        predict_xla(xla_collectives("gfx950").head(2), nv)


# ---- the shipped fit -----------------------------------------------------------------------------


def test_fit_file_layout_and_separate_families():
    data = _fit_file()
    assert "collectives_vs_xla.py --write-fit" in data["made_by"] and "sha256" in str(data)
    assert sorted(data["families"]) == sorted(FIT_FAMILIES)
    nv, amd = (collective_fit(f) for f in ("nvidia-nvlink", "amd-infinity-fabric"))
    assert tuple(nv.params) == FIT_PARAMETERS and tuple(amd.params) == FIT_PARAMETERS
    assert data["families"]["amd-infinity-fabric"]["archs"] == ["gfx950"]
    # Separately fitted: no parameter shared (AMD has no switch, so its NVLS share stays the prior).
    shared = [k for k in FIT_PARAMETERS if k != "switch_reduction_efficiency"]
    assert all(nv.params[k] != amd.params[k] for k in shared)
    assert amd.switch_reduction_min_devices is None and nv.switch_reduction_min_devices == 9
    # Physically sensible: shares of the link below 1, overheads of microseconds.
    for fit in (nv, amd):
        assert 0.5 < fit.params["ring_efficiency"] < 1.0
        assert 1e-6 < fit.params["launch_s"] < 1e-4


def test_shipped_fit_meets_its_stated_in_sample_error(rows):
    data = _fit_file()
    for fam, part in rows.groupby("family"):
        pred = predict_xla(part)
        big = part.tensor_size_bytes.to_numpy() >= MIB
        for arch in sorted(set(part.arch)):
            m = (part.arch == arch).to_numpy() & big
            ape = np.median(np.abs(pred[m] / part.time_s.to_numpy()[m] - 1)) * 100
            stated = data["families"][fam]["insample"][arch]["median_ape_ge_1mib_pct"]
            assert ape == pytest.approx(stated, abs=0.5), arch
            assert ape < 15.0, arch


def test_held_out_arch_within_stated_error():
    # Fit on GB300 alone; score the GB200 rows the fit never saw (>= 1 MiB) and a few single rows.
    fit = fit_collectives(xla_collectives("sm_103"), steps=400)
    held = xla_collectives("sm_100_GB200")
    held = held[held.tensor_size_bytes >= MIB]
    ratio = predict_xla(held, fit) / held.time_s.to_numpy()
    assert np.median(np.abs(ratio - 1)) * 100 < 15.0
    for kind, p in [("all_gather", 8), ("reduce_scatter", 64), ("all_to_all", 16)]:
        one = held[(held.kind == kind) & (held.group_size == p) & (held.tensor_size_bytes == 2**30)]
        r = predict_xla(one, fit) / one.time_s.to_numpy()
        assert np.all(np.abs(r - 1) < 0.15), (kind, p, r)


# ---- the calibrated model --------------------------------------------------------------------------


def _unit_params(**over):
    q = dict.fromkeys(FIT_PARAMETERS, 0.0)
    q.update(ring_efficiency=1.0, all_to_all_efficiency=1.0, switch_reduction_efficiency=1.0)
    q.update(over)
    return q


def test_calibrated_hand_values():
    n, bw = 1e6, 1e9
    # No overheads, the full link: the busiest port's bytes over its bandwidth.
    q = _unit_params()
    assert float(calibrated_time_s("all_reduce", n, 4, bw, q)) == pytest.approx(1.5e-3, rel=1e-5)
    assert float(calibrated_time_s("all_gather", n, 4, bw, q)) == pytest.approx(3e-3, rel=1e-5)
    assert float(calibrated_time_s("reduce_scatter", n, 4, bw, q)) == pytest.approx(
        0.75e-3, rel=1e-5
    )
    # Launch 10 us + 2 x 5 us execution share + 6 ring steps x 1 us; efficiency 0.5 at p -> inf
    # with offset 4: share 0.5 * 4 / (4 + 4) = 0.25, wire 1.5 ms / 0.25 = 6 ms; ramp 2 sqrt(1e-6 * 6e-3).
    q = _unit_params(
        launch_s=10e-6,
        execution_overhead_s=5e-6,
        step_latency_s=1e-6,
        chunk_overhead_s=1e-6,
        ring_efficiency=0.5,
        group_size_offset=4.0,
    )
    wire = 1.5e-3 / 0.25
    want = 10e-6 + 2 * 5e-6 + 6e-6 + wire + 2 * np.sqrt(1e-6 * wire)
    got = calibrated_time_s("all_reduce", n, 4, bw, q, execution_share=2.0)
    assert float(got) == pytest.approx(want, rel=1e-5)
    # All-to-all: (p-1) peers of latency, (p-1)/p n over the port; permute: one step, no p term.
    q = _unit_params(peer_latency_s=2e-6, step_latency_s=1e-6, all_to_all_efficiency=0.5)
    assert float(calibrated_time_s("all_to_all", n, 8, bw, q)) == pytest.approx(
        7 * 2e-6 + 7 / 8 * n / (0.5 * bw), rel=1e-5
    )
    assert float(calibrated_time_s("collective_permute", n, 8, bw, q)) == pytest.approx(
        1e-6 + n / bw, rel=1e-5
    )
    # NVLS: n each way through the port, 2 ceil(lg p) steps; only where a switch bandwidth is given.
    q = _unit_params(step_latency_s=1e-6, switch_reduction_efficiency=0.5)
    ring, nvls = calibrated_algorithm_times_s(
        "all_reduce", n, 16, bw, q, switch_bandwidth_bytes_per_s=bw
    )
    assert float(nvls) == pytest.approx(8e-6 + n / (0.5 * bw), rel=1e-5)
    assert float(ring) == pytest.approx(30e-6 + 2 * 15 / 16 * n / bw, rel=1e-5)
    assert float(calibrated_algorithm_times_s("all_reduce", n, 16, bw, q)[1]) == np.inf


def test_injection_bandwidth_and_families():
    assert injection_bandwidth_bytes_per_s("8xh100-nvlink") == 450e9
    assert injection_bandwidth_bytes_per_s("8xmi300x") == 7 * 64e9
    assert injection_bandwidth_bytes_per_s("8xmi355x", [0, 1, 2, 3]) == 3 * 76.8e9
    assert vendor_family("8xh100-nvlink", [0, 1]) == "nvidia-nvlink"
    assert vendor_family("8xmi300x") == "amd-infinity-fabric"
    with pytest.raises(ValueError, match=r"no fitted collective parameters.*'4xa100-pcie'.*pcie"):
        vendor_family("4xa100-pcie")
    with pytest.raises(ValueError, match=r"no fitted collective parameters.*tpu-v4"):
        collective_time_s("all_reduce", 1e6, "tpu-v4-2x2x2", fit="xla")


def test_fit_on_platforms_transfers_link_figures():
    # Same fitted NVIDIA parameters, half the link: large messages take ~2x as long on H100 as on
    # B200, and the 1 KiB time is the same overhead on both.
    big = [
        float(collective_time_s("all_gather", 2**27, p, fit="xla"))
        for p in ("8xh100-nvlink", "8xb200-nvlink")
    ]
    assert 1.8 < big[0] / big[1] < 2.0
    small = [
        float(collective_time_s("all_gather", 128, p, fit="xla"))
        for p in ("8xh100-nvlink", "8xb200-nvlink")
    ]
    assert small[0] == pytest.approx(small[1], rel=0.01)
    # NVLS only on the 72-GPU switch domain, never on an 8-GPU board.
    t = collective_time_s(
        "all_reduce",
        2**30,
        "gb200-nvl72",
        group=list(range(16)),
        fit="xla",
        algorithm="switch_reduction",
    )
    assert float(t) > 0
    with pytest.raises(
        ValueError, match=r"switch_reduction \(NVLS\) needs an NVSwitch domain of at least 9"
    ):
        collective_time_s(
            "all_reduce", 2**30, "8xb200-nvlink", fit="xla", algorithm="switch_reduction"
        )
    # fit=None forces the alpha-beta model on published figures (halving-doubling here), even
    # where the default (fit="auto") is the calibrated model.
    assert float(collective_time_s("all_reduce", 1e9, "8xh100-nvlink", fit=None)) == pytest.approx(
        2 * 7 / 8 * 1e9 / 450e9 + 6 * 2e-6, rel=1e-6
    )


# ---- the default: fit="auto" ---------------------------------------------------------------------

_COVERED_KINDS = ["all_reduce", "all_gather", "reduce_scatter", "all_to_all"]


@pytest.mark.parametrize("plat", ["8xh100-nvlink", "8xmi300x", "gb200-nvl72"])
def test_default_is_the_fit_where_it_applies(plat):
    fam = vendor_family(plat)
    assert fitted_family(plat) == fam and choose_fit("all_reduce", plat).family == fam
    for kind in _COVERED_KINDS:
        for n in (0.0, 1024.0, 2**24, 2**30):
            want = float(collective_time_s(kind, n, plat, fit="xla"))
            assert float(collective_time_s(kind, n, plat)) == want, (kind, n)
            assert min(float(t) for t in algorithm_times_s(kind, n, plat).values()) == want
        # Inside a program (the default) the per-execution overhead is left out.
        q = collective_fit(fam).params
        gap = float(collective_time_s(kind, 1024.0, plat, standalone=True)) - float(
            collective_time_s(kind, 1024.0, plat)
        )
        assert gap == pytest.approx(q["execution_overhead_s"], rel=1e-3)
    pairs = [(0, 1), (1, 0)]
    assert float(collective_time_s("collective_permute", 2**20, plat, pairs)) == float(
        collective_time_s("collective_permute", 2**20, plat, pairs, fit="xla")
    )
    assert float(collective_time_s("send_recv", 2**20, plat, (0, 1))) == float(
        collective_time_s("send_recv", 2**20, plat, (0, 1), fit="xla")
    )
    # The fit differs from the alpha-beta prior (overheads, achievable share of the link).
    assert float(collective_time_s("all_gather", 2**30, plat)) != float(
        collective_time_s("all_gather", 2**30, plat, fit=None)
    )


@pytest.mark.parametrize("plat", ["4xa100-pcie", "tpu-v4-2x2x2", "host+a100-pcie"])
def test_default_is_alpha_beta_where_no_fit_applies(plat):
    # PCIe-only GPU server, TPU ICI torus, mixed host CPU + GPU: the published-figure model.
    assert fitted_family(plat) is None and choose_fit("all_reduce", plat) is None
    with pytest.raises(ValueError, match=r"no fitted collective parameters"):
        vendor_family(plat)
    for kind in [*_COVERED_KINDS, "collective_broadcast"]:
        for n in (0.0, 1024.0, 2**24):
            assert float(collective_time_s(kind, n, plat)) == float(
                collective_time_s(kind, n, plat, fit=None)
            ), (kind, n)
        assert sorted(algorithm_times_s(kind, 1e6, plat)) == sorted(
            algorithm_times_s(kind, 1e6, plat, fit=None)
        )
    assert float(collective_time_s("send_recv", 2**20, plat, (0, 1))) == float(
        collective_time_s("send_recv", 2**20, plat, (0, 1), fit=None)
    )


def test_default_falls_back_per_kind_algorithm_and_group():
    h100 = "8xh100-nvlink"
    # No calibrated broadcast; alpha-beta-only algorithms select the alpha-beta model.
    assert choose_fit("collective_broadcast", h100) is None
    assert float(collective_time_s("collective_broadcast", 1e6, h100)) == float(
        collective_time_s("collective_broadcast", 1e6, h100, fit=None)
    )
    for alg in ("halving_doubling", "recursive_doubling"):
        assert float(collective_time_s("all_reduce", 1e6, h100, algorithm=alg)) == float(
            collective_time_s("all_reduce", 1e6, h100, algorithm=alg, fit=None)
        )
    # "ring" is in both menus: it follows the group (calibrated ring on NVLink).
    assert float(collective_time_s("all_reduce", 1e6, h100, algorithm="ring")) == float(
        collective_time_s("all_reduce", 1e6, h100, algorithm="ring", fit="xla")
    )
    assert best_algorithm("all_reduce", 2**30, "gb200-nvl72") == "switch_reduction"
    assert best_algorithm("all_reduce", 2**30, "gb200-nvl72", fit=None) == "halving_doubling"
    # NVLS only exists in the calibrated model: where no fit applies, say why.
    with pytest.raises(ValueError, match=r"no fitted collective parameters.*'4xa100-pcie'"):
        collective_time_s("all_reduce", 1e6, "4xa100-pcie", algorithm="switch_reduction")
    # One device, or a permute that moves nothing: zero under either model.
    assert choose_fit("all_reduce", h100, [2]) is None
    assert float(collective_time_s("collective_permute", 1e6, h100, [(1, 1)])) == 0.0


def _plat(devices, topology):
    return from_mapping({"name": "t", "devices": devices, "topology": topology})


def test_coverage_needs_gpus_of_one_fitted_vendor_one_hop_apart():
    topo = {"bandwidth_bytes_per_s": 64e9, "latency_s": 1e-6}
    # AMD CPUs on Infinity Fabric (xGMI) are not GPUs: no fit, alpha-beta.
    cpus = _plat(
        {"cpu": {"device": "epyc-9654", "count": 2}},
        {"kind": "fully-connected", "link_kind": "infinity-fabric", **topo},
    )
    assert fitted_family(cpus) is None
    with pytest.raises(ValueError, match=r"epyc-9654 is not a GPU"):
        vendor_family(cpus)
    assert float(collective_time_s("all_reduce", 1e6, cpus)) == float(
        collective_time_s("all_reduce", 1e6, cpus, fit=None)
    )
    # NVIDIA GPUs on a 4-GPU NVLink ring: neighbours are one hop apart (covered), the whole ring
    # relays through other GPUs (not what the fit saw: alpha-beta).
    ring = _plat({"gpu": {"device": "v100", "count": 4}}, {"kind": "ring", **topo})
    assert fitted_family(ring, [0, 1]) == "nvidia-nvlink"
    assert fitted_family(ring) is None
    with pytest.raises(ValueError, match=r"gpu0 reaches gpu2 only through gpu\d"):
        vendor_family(ring)
    assert float(collective_time_s("all_gather", 1e6, ring)) == float(
        collective_time_s("all_gather", 1e6, ring, fit=None)
    )
    # AMD GPUs fully connected by Infinity Fabric, NVIDIA GPUs fully connected by NVLink: covered.
    amd = _plat(
        {"gpu": {"device": "mi300x", "count": 4}},
        {"kind": "fully-connected", "link_kind": "infinity-fabric", **topo},
    )
    nv = _plat({"gpu": {"device": "h100", "count": 4}}, {"kind": "fully-connected", **topo})
    assert (fitted_family(amd), fitted_family(nv)) == ("amd-infinity-fabric", "nvidia-nvlink")
    # Vendor and link must match: AMD GPUs on NVLink-kind links, NVIDIA GPUs on PCIe.
    odd = _plat({"gpu": {"device": "mi300x", "count": 2}}, {"kind": "fully-connected", **topo})
    assert fitted_family(odd) is None


@pytest.mark.parametrize("plat", ["8xh100-nvlink", "8xmi300x", "gb300-nvl72"])
@pytest.mark.parametrize("kind", ["all_reduce", "all_gather", "reduce_scatter", "all_to_all"])
def test_monotone_and_overhead_dominates_at_1kib(plat, kind):
    sizes = jnp.asarray(2.0 ** np.arange(0, 34, 1.0))
    fam = vendor_family(plat)
    q = collective_fit(fam).params
    times = np.asarray(
        jax.vmap(lambda n: collective_time_s(kind, n, plat, fit="xla", standalone=True))(sizes)
    )
    assert np.all(np.diff(times) >= 0) and np.all(np.diff(times[12:]) > 0)
    t0 = float(collective_time_s(kind, 0.0, plat, fit="xla", standalone=True))
    t1k = float(collective_time_s(kind, KIB, plat, fit="xla", standalone=True))
    # At 1 KiB the fixed overheads are at least 90 % of the time.
    assert t0 >= q["launch_s"] + q["execution_overhead_s"]
    assert t0 <= t1k <= t0 / 0.9


def test_gradients_finite_and_correct():
    for plat, kind in [
        ("8xh100-nvlink", "all_reduce"),
        ("8xmi300x", "all_to_all"),
        ("gb200-nvl72", "all_reduce"),
    ]:
        f = lambda n, plat=plat, kind=kind: collective_time_s(
            kind, n, plat, fit="xla", algorithm="smooth"
        )
        for n in (0.0, 1024.0, 1e6, 1e9):
            g = float(jax.grad(f)(n))
            assert np.isfinite(g) and g > 0
        if plat == "8xh100-nvlink":
            check_grads(f, (1e6,), order=1, modes=["rev"], rtol=2e-2)
    # With respect to the parameters (what the fit differentiates).
    q = {k: jnp.asarray(v) for k, v in collective_fit("nvidia-nvlink").params.items()}
    grads = jax.grad(
        lambda q: calibrated_time_s("all_gather", 1e7, 8, 450e9, q, execution_share=1.0)
    )(q)
    assert all(np.isfinite(float(v)) for v in grads.values())
    assert float(grads["ring_efficiency"]) < 0 < float(grads["launch_s"])


def test_calibrated_errors():
    with pytest.raises(ValueError, match=r"nbytes must be a finite number >= 0.*-1.0"):
        collective_time_s("all_reduce", -1.0, "8xh100-nvlink", fit="xla")
    with pytest.raises(ValueError, match=r"calibrated model covers .* not 'collective_broadcast'"):
        collective_time_s("collective_broadcast", 1e6, "8xh100-nvlink", fit="xla")
    with pytest.raises(
        ValueError, match=r"unknown calibrated all_gather algorithm 'recursive_doubling'"
    ):
        collective_time_s(
            "all_gather", 1e6, "8xh100-nvlink", fit="xla", algorithm="recursive_doubling"
        )
    with pytest.raises(
        ValueError, match=r"the fit is for 'nvidia-nvlink' but .* 'amd-infinity-fabric'"
    ):
        collective_time_s("all_gather", 1e6, "8xmi300x", fit=collective_fit("nvidia-nvlink"))
    with pytest.raises(ValueError, match=r"fit must be None, 'xla', 'auto'"):
        collective_time_s("all_gather", 1e6, "8xmi300x", fit="fitted")
    # A misspelt fit is named as such, also where no fit would apply.
    with pytest.raises(ValueError, match=r"fit must be None, 'xla', 'auto'"):
        collective_time_s("all_gather", 1e6, "4xa100-pcie", fit="fitted")
    with pytest.raises(ValueError, match=r"missing \['chunk_overhead_s'\]"):
        CollectiveFit("nvidia-nvlink", {k: 1.0 for k in FIT_PARAMETERS if k != "chunk_overhead_s"})
    with pytest.raises(ValueError, match=r"ring_efficiency must be a finite number > 0"):
        CollectiveFit(
            "amd-infinity-fabric",
            {**prior_fit("amd-infinity-fabric").params, "ring_efficiency": 0.0},
        )
    with pytest.raises(ValueError, match=r"unknown family 'intel'"):
        prior_fit("intel")
