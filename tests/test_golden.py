"""Regression guard: a change that moves any recorded prediction by more than 5% fails here.

If the change is intended, re-record with ``python tests/golden/workloads.py --update`` and
commit predictions.json with it (the diff then shows every moved number).
"""

from __future__ import annotations

import functools
import json

import pytest
from golden.workloads import DEVICES, RECORD, TOLERANCE, predict_all, workloads

_RECORD = json.loads(RECORD.read_text())


@functools.lru_cache(maxsize=1)
def _now():
    return predict_all()


def test_record_covers_every_workload_and_device():
    assert set(_RECORD) == set(workloads())
    for name in _RECORD:
        assert set(_RECORD[name]) == set(DEVICES)


@pytest.mark.parametrize("name", sorted(workloads()))
def test_predictions_match_the_record(name):
    moved = []
    for device, old in _RECORD[name].items():
        new = _now()[name][device]
        if "error" in old or "error" in new:
            assert old.get("error") == new.get("error"), (device, old, new)
            continue
        for key in ("time_s", "energy_j"):
            if abs(new[key] / old[key] - 1) > TOLERANCE:
                moved.append(
                    f"{device} {key}: {old[key]:.4g} -> {new[key]:.4g} ({new[key] / old[key] - 1:+.1%})"
                )
        if new["bottleneck"] != old["bottleneck"]:
            moved.append(f"{device} bottleneck: {old['bottleneck']} -> {new['bottleneck']}")
    assert not moved, (
        f"{name}: predictions moved by more than {TOLERANCE:.0%} "
        "(re-record with `python tests/golden/workloads.py --update` if intended):\n  "
        + "\n  ".join(moved)
    )
