"""Platforms: built-in files, routes (hand-derived), transfer times, and every validation error."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from perfjax.placement import Link, Platform, from_mapping, platform, platforms


def _pair(**over):
    data = {
        "name": "pair",
        "devices": {"a": "h100", "b": "h100"},
        "links": [
            {
                "src": "a",
                "dst": "b",
                "bandwidth_bytes_per_s": 1e9,
                "latency_s": 1e-6,
                "kind": "nvlink",
            }
        ],
    }
    data.update(over)
    return data


def test_builtins_load_and_have_expected_shape():
    assert platforms() == [
        "4xa100-pcie",
        "8xb200-nvlink",
        "8xh100-nvlink",
        "8xmi300x",
        "8xmi355x",
        "gb200-nvl72",
        "gb300-nvl72",
        "host+a100-pcie",
        "tpu-v4-2x2x2",
    ]
    p = platform("8xh100-nvlink")
    assert p.device_names == tuple(f"gpu{i}" for i in range(8))
    assert {s.name for s in p.specs} == {"h100"}
    assert p.switches == ("nvswitch",)
    assert p.memory_bytes == (p.specs[0].memory_bytes,) * 8
    assert platform("8XH100-NVLINK") is p  # case-insensitive, cached


@pytest.mark.parametrize(
    "name, device, count, switch, bandwidth, vendor",
    [
        ("8xb200-nvlink", "b200", 8, "nvswitch", 900e9, "NVIDIA"),
        ("gb200-nvl72", "gb200", 72, "nvlink-switch", 900e9, "NVIDIA"),
        ("gb300-nvl72", "gb300", 72, "nvlink-switch", 900e9, "NVIDIA"),
    ],
)
def test_nvlink5_switch_platforms(name, device, count, switch, bandwidth, vendor):
    p = platform(name)
    assert p.num_devices == count and {s.name for s in p.specs} == {device}
    assert {s.vendor for s in p.specs} == {vendor}
    assert p.switches == (switch,) and len(p.links) == count  # one port per GPU
    assert "datasheet" in p.source and "NVLink" in p.source  # names its published figures
    bw = p.bandwidth_matrix_bytes_per_s()
    off = ~np.eye(count, dtype=bool)
    # Per direction: 18 NVLink 5 links x 50 GB/s = 900 GB/s ("1.8 TB/s" counts both directions).
    assert np.all(bw[off] == bandwidth)
    assert p.route("gpu0", f"gpu{count - 1}") == ("gpu0", switch, f"gpu{count - 1}")
    np.testing.assert_allclose(p.latency_matrix_s()[off], 2e-6)


@pytest.mark.parametrize(
    "name, device, link_bytes_per_s",
    [("8xmi355x", "mi355x", 76.8e9), ("8xmi300x", "mi300x", 64e9)],
)
def test_infinity_fabric_platforms_are_fully_connected(name, device, link_bytes_per_s):
    p = platform(name)
    assert p.num_devices == 8 and {s.name for s in p.specs} == {device}
    assert {s.vendor for s in p.specs} == {"AMD"} and p.switches == ()
    assert "datasheet" in p.source and "Infinity Fabric" in p.source
    # One direct link per pair (8 choose 2), each the per-direction rate of one link
    # (MI355X 153.6 GB/s, MI300X 128 GB/s bidirectional).
    assert len(p.links) == 28 and {link.kind for link in p.links} == {"infinity-fabric"}
    bw = p.bandwidth_matrix_bytes_per_s()
    assert np.all(bw[~np.eye(8, dtype=bool)] == link_bytes_per_s)
    assert p.route("gpu2", "gpu7") == ("gpu2", "gpu7")  # one hop, no switch
    assert p.transfer_time_s("gpu0", "gpu5", link_bytes_per_s) == pytest.approx(1.0 + 1e-6)


def test_nvswitch_routes_two_hops():
    p = platform("8xh100-nvlink")
    bw, lat = p.bandwidth_matrix_bytes_per_s(), p.latency_matrix_s()
    off = ~np.eye(8, dtype=bool)
    # GPU -> switch -> GPU: both links 450 GB/s, 1 us each.
    assert np.all(bw[off] == 450e9) and np.all(np.isinf(np.diag(bw)))
    np.testing.assert_allclose(lat[off], 2e-6)
    assert np.all(np.diag(lat) == 0)
    assert p.route("gpu0", "gpu5") == ("gpu0", "nvswitch", "gpu5")
    assert p.transfer_time_s(0, "gpu3", 450e9) == pytest.approx(1.0 + 2e-6)
    assert p.transfer_time_s("gpu2", 2, 1e12) == 0.0


def test_pcie_tree_and_host_platforms():
    p = platform("4xa100-pcie")
    assert p.route("gpu0", "gpu3") == ("gpu0", "pcie-root", "gpu3")
    assert p.bandwidth_matrix_bytes_per_s()[1, 2] == 25e9
    assert p.latency_matrix_s()[1, 2] == pytest.approx(2e-6)
    h = platform("host+a100-pcie")
    assert h.device_names == ("host", "gpu0")
    assert [s.family for s in h.specs] == ["cpu", "gpu"]
    assert h.transfer_time_s("host", "gpu0", 25e9) == pytest.approx(1.0 + 5e-6)


def test_torus_latency_is_hamming_distance():
    p = platform("tpu-v4-2x2x2")
    assert len(p.links) == 12  # 8 chips x 3 dims / 2, no duplicate wraparound at size 2
    lat = p.latency_matrix_s()
    for i in range(8):
        for j in range(8):
            assert lat[i, j] == pytest.approx(bin(i ^ j).count("1") * 1e-6)
    assert np.all(p.bandwidth_matrix_bytes_per_s()[~np.eye(8, dtype=bool)] == 45e9)
    # A 4-ring has wraparound: 0 and 3 are neighbours.
    ring4 = from_mapping(
        {
            "name": "t",
            "devices": {"t": {"device": "tpu-v4", "count": 4}},
            "topology": {
                "kind": "torus",
                "dims": [4],
                "bandwidth_bytes_per_s": 1e9,
                "latency_s": 1.0,
            },
        }
    )
    assert ring4.latency_matrix_s()[0, 3] == 1.0 and ring4.latency_matrix_s()[0, 2] == 2.0


def test_widest_route_then_lowest_latency():
    # a-b 100 GB/s, b-c 10 GB/s, a-c direct 5 GB/s: the best a->c route goes through b (10 > 5).
    p = from_mapping(
        {
            "name": "tri",
            "devices": {"a": "h100", "b": "h100", "c": "h100"},
            "links": [
                {
                    "src": "a",
                    "dst": "b",
                    "bandwidth_bytes_per_s": 100e9,
                    "latency_s": 1e-6,
                    "kind": "nvlink",
                },
                {
                    "src": "b",
                    "dst": "c",
                    "bandwidth_bytes_per_s": 10e9,
                    "latency_s": 2e-6,
                    "kind": "pcie",
                },
                {
                    "src": "a",
                    "dst": "c",
                    "bandwidth_bytes_per_s": 5e9,
                    "latency_s": 0.5e-6,
                    "kind": "pcie",
                },
            ],
        }
    )
    assert p.route("a", "c") == ("a", "b", "c")
    assert p.bandwidth_matrix_bytes_per_s()[0, 2] == 10e9
    assert p.latency_matrix_s()[0, 2] == pytest.approx(3e-6)
    assert p.transfer_time_s("a", "c", 10e9) == pytest.approx(1.0 + 3e-6)
    # Equal bottleneck: the lower-latency of two routes wins.
    q = from_mapping(
        {
            "name": "square",
            "devices": {"a": "h100", "b": "h100", "c": "h100", "d": "h100"},
            "links": [
                {
                    "src": "a",
                    "dst": "b",
                    "bandwidth_bytes_per_s": 1e9,
                    "latency_s": 5e-6,
                    "kind": "pcie",
                },
                {
                    "src": "b",
                    "dst": "d",
                    "bandwidth_bytes_per_s": 1e9,
                    "latency_s": 5e-6,
                    "kind": "pcie",
                },
                {
                    "src": "a",
                    "dst": "c",
                    "bandwidth_bytes_per_s": 1e9,
                    "latency_s": 1e-6,
                    "kind": "pcie",
                },
                {
                    "src": "c",
                    "dst": "d",
                    "bandwidth_bytes_per_s": 1e9,
                    "latency_s": 1e-6,
                    "kind": "pcie",
                },
            ],
        }
    )
    assert q.route("a", "d") == ("a", "c", "d")
    assert q.latency_matrix_s()[0, 3] == pytest.approx(2e-6)


def test_ring_topology_and_count_expansion():
    p = from_mapping(
        {
            "name": "r",
            "devices": {"gpu": {"device": "a100-80gb", "count": 6}},
            "topology": {"kind": "ring", "bandwidth_bytes_per_s": 2e9, "latency_s": 1e-6},
        }
    )
    assert p.device_names == tuple(f"gpu{i}" for i in range(6))
    assert p.latency_matrix_s()[0, 3] == pytest.approx(3e-6)  # opposite side of a 6-ring
    assert p.latency_matrix_s()[0, 5] == pytest.approx(1e-6)  # wraparound link
    assert all(link.kind == "nvlink" for link in p.links)


def test_printing_and_dataframe():
    p = platform("8xh100-nvlink")
    text = str(p)
    assert "gpu7" in text and "450 GB/s" in text and "nvswitch" in text
    df = p.to_dataframe()
    assert len(df) == 8 and set(df["kind"]) == {"nvswitch"}
    assert "Platform(name='8xh100-nvlink'" in repr(p)


def test_yaml_and_toml_files(tmp_path):
    yaml_text = (
        "name: yaml-pair\ndevices:\n  a: h100\n  b: a100-80gb\nlinks:\n"
        "  - {src: a, dst: b, bandwidth_bytes_per_s: 2.0e+9, latency_s: 0.0, kind: pcie}\n"
    )
    (tmp_path / "p.yaml").write_text(yaml_text)
    p = platform(tmp_path / "p.yaml")
    assert p.name == "yaml-pair" and p.transfer_time_s("a", "b", 2e9) == pytest.approx(1.0)
    (tmp_path / "q.toml").write_text(
        '[devices]\ngpu = { device = "h100", count = 2 }\n'
        '[topology]\nkind = "nvswitch"\nbandwidth_bytes_per_s = 1e9\nlatency_s = 0.0\n'
    )
    q = platform(str(tmp_path / "q.toml"))
    assert q.name == "q" and q.bandwidth_matrix_bytes_per_s()[0, 1] == 1e9


@pytest.mark.parametrize(
    "data, match",
    [
        (_pair(devices={"a": "h10O", "b": "h100"}), r"unknown catalog device 'h10O'.*'h100'"),
        (
            _pair(links=[{"src": "a", "dst": "gpu9", "bandwidth_bytes_per_s": 1e9}]),
            r"link 0 \(a -> gpu9\) names unknown endpoint\(s\) 'gpu9'",
        ),
        (
            _pair(devices={"a": "h100", "b": "h100", "c": "h100", "d": "h100"}),
            r"device\(s\) c, d are not connected to a",
        ),
        (
            _pair(links=[{"src": "a", "dst": "b", "bandwidth_bytes_per_s": -1e9}]),
            r"bandwidth_bytes_per_s must be a positive finite number.*-1000000000.0",
        ),
        (
            _pair(links=[{"src": "a", "dst": "b", "bandwidth_bytes_per_s": 0}]),
            r"bandwidth_bytes_per_s must be a positive",
        ),
        (
            _pair(links=[{"src": "a", "dst": "b", "bandwidth_bytes_per_s": 1e9, "latency_s": -1}]),
            r"latency_s must be a finite number >= 0",
        ),
        (
            {
                "name": "dup",
                "devices": {"gpu": {"device": "h100", "count": 2}, "gpu1": "h100"},
                "topology": {"kind": "nvswitch", "bandwidth_bytes_per_s": 1e9, "latency_s": 0},
            },
            r"duplicate name 'gpu1'",
        ),
        (
            _pair(links=[{"src": "a", "dst": "b", "bandwidth_bytes_per_s": 1e9, "kind": "nvlnk"}]),
            r"unknown link kind 'nvlnk' \(did you mean 'nvlink'\?\)",
        ),
        (
            _pair(
                links=[
                    {"src": "a", "dst": "b", "bandwidth_bytes_per_s": 1e9},
                    {"src": "b", "dst": "a", "bandwidth_bytes_per_s": 2e9},
                ]
            ),
            r"duplicates an earlier link",
        ),
        (
            {
                "name": "t",
                "devices": {"t": {"device": "tpu-v4", "count": 6}},
                "topology": {
                    "kind": "torus",
                    "dims": [2, 2, 2],
                    "bandwidth_bytes_per_s": 1e9,
                    "latency_s": 0,
                },
            },
            r"torus dims \[2, 2, 2\] hold 8 devices but 6",
        ),
        (
            {
                "name": "t",
                "devices": {"a": "h100", "b": "h100"},
                "topology": {"kind": "nvswitchh", "bandwidth_bytes_per_s": 1e9, "latency_s": 0},
            },
            r"unknown kind 'nvswitchh' \(did you mean 'nvswitch'\?\)",
        ),
        ({"name": "x", "devices": {"a": "h100"}, "linkz": []}, r"unknown key\(s\) 'linkz'"),
        ({"name": "x"}, r"needs a \[devices\] table"),
    ],
)
def test_bad_platforms_fail_with_the_fix(data, match):
    with pytest.raises(ValueError, match=match):
        from_mapping(data)


def test_bad_names():
    with pytest.raises(ValueError, match=r"unknown platform '8xh100'.*'8xh100-nvlink'"):
        platform("8xh100")
    p = platform("8xh100-nvlink")
    with pytest.raises(ValueError, match=r"no device 'gpu8'"):
        p.index("gpu8")
    with pytest.raises(IndexError, match=r"0..7"):
        p.index(8)
    with pytest.raises(FileNotFoundError):
        platform("/nonexistent/platform.toml")


def test_direct_construction_validates():
    spec = platform("8xh100-nvlink").specs[0]
    with pytest.raises(ValueError, match="not connected"):
        Platform("x", ("a", "b"), (spec, spec), ())
    p = Platform("x", ("a", "b"), (spec, spec), (Link("a", "b", 1e9, 0.0, "pcie"),))
    assert p.bandwidth_matrix_bytes_per_s()[0, 1] == 1e9


@settings(max_examples=25, deadline=None)
@given(
    bws=st.lists(st.floats(1e6, 1e12), min_size=2, max_size=6),
    lats=st.lists(st.floats(0.0, 1e-3), min_size=6, max_size=6),
    nbytes=st.floats(0.0, 1e10),
)
def test_chain_route_is_bottleneck_and_sum(bws, lats, nbytes):
    n = len(bws) + 1
    names = [f"d{i}" for i in range(n)]
    links = [
        {
            "src": names[i],
            "dst": names[i + 1],
            "bandwidth_bytes_per_s": bws[i],
            "latency_s": lats[i],
            "kind": "pcie",
        }
        for i in range(n - 1)
    ]
    p = from_mapping({"name": "chain", "devices": dict.fromkeys(names, "h100"), "links": links})
    bw, lat = p.bandwidth_matrix_bytes_per_s(), p.latency_matrix_s()
    assert bw[0, n - 1] == min(bws) and bw[n - 1, 0] == min(bws)
    assert lat[0, n - 1] == pytest.approx(sum(lats[: n - 1]), abs=1e-12)
    np.testing.assert_array_equal(bw, bw.T)
    t = p.transfer_time_s(0, n - 1, nbytes)
    assert t >= p.transfer_time_s(0, n - 2, nbytes) - 1e-15
    assert math.isfinite(t) and t <= p.transfer_time_s(0, n - 1, nbytes + 1.0)
