"""The hand-written aggregate3 codec equals eth_abi's on random inputs, and refuses garbage."""

from __future__ import annotations

import pytest
from eth_abi import decode, encode
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.evm.multicall import AGGREGATE3, Call, decode_aggregate3, encode_aggregate3

addresses = st.binary(min_size=20, max_size=20).map(lambda b: "0x" + b.hex())
calls = st.lists(st.builds(Call, addresses, st.binary(max_size=200), st.booleans()), max_size=20)
results = st.lists(st.tuples(st.booleans(), st.binary(max_size=200)), max_size=20)


@settings(max_examples=300)
@given(calls)
def test_encode_equals_eth_abi(cs: list[Call]) -> None:
    expected = AGGREGATE3 + encode(["(address,bool,bytes)[]"], [[(c.target, c.allow_failure, c.data) for c in cs]])
    assert encode_aggregate3(cs) == "0x" + expected.hex()


@settings(max_examples=300)
@given(results)
def test_decode_equals_eth_abi(rs: list[tuple[bool, bytes]]) -> None:
    raw = "0x" + encode(["(bool,bytes)[]"], [rs]).hex()
    got = decode_aggregate3(raw)
    (want,) = decode(["(bool,bytes)[]"], bytes.fromhex(raw[2:]))
    assert [(r.success, r.data) for r in got] == [(bool(a), bytes(b)) for a, b in want]


@given(results, st.integers(min_value=1, max_value=64))
def test_truncated_answer_is_refused(rs: list[tuple[bool, bytes]], cut: int) -> None:
    raw = encode(["(bool,bytes)[]"], [rs])
    if len(raw) - cut < 64 or not rs:
        return
    with pytest.raises(ValueError):
        decode_aggregate3("0x" + raw[: len(raw) - cut].hex())
