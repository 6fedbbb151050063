"""Bit-exact agreement with @uniswap/v3-sdk (node) on seeded random inputs, via the bench harness."""

from __future__ import annotations

import pytest

from bench.lp_math import compare, generate, run_python, run_sdk

pytestmark = pytest.mark.cli  # runs the SDK in node


def test_lp_math_identical_to_v3_sdk() -> None:
    ticks, sqrts, positions = generate(400, seed=20260)
    _, py = run_python(ticks, sqrts, positions, repeat=1)
    sdk = run_sdk(ticks, sqrts, positions, repeat=1)
    mismatches = compare(py, sdk)
    assert set(mismatches) == {
        "sqrt_at_tick",
        "tick_at_sqrt",
        "amounts_down",
        "amounts_up",
        "position_down",
        "position_up",
    }
    assert mismatches == dict.fromkeys(mismatches, 0)
    # the harness does see differences when there are some
    py["amounts_up"][0] = (py["amounts_up"][0][0] + 1, py["amounts_up"][0][1])
    assert compare(py, sdk)["amounts_up"] == 1
