"""Overrides name the layers the approved policy declares (policies/vocab.py: a policy may
declare its own layers instead of short/intermediate/structural). Before, a policy with
custom layers was accepted but every override naming one of them was refused."""

from __future__ import annotations

import json
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount

from adapters.evm import safe as S
from bot import governance as G
from bot.audit_store import AuditStore
from policies.vocab import DEFAULT_LAYERS
from tests.bot.governance.conftest import POLICY_TEXT

pytestmark = pytest.mark.xdist_group("governance")

NOW = 1_800_000_000
CUSTOM_LAYERS = """
[layers.weekly]
min_days = 0
max_days = 7
trigger = {{ min_level = "crisis" }}
size = {{ fraction_of_x_max = 0.25 }}
roll = {{ days_before_expiry = 1 }}
premium = {{ max_pct_of_spot = 0.02 }}

[layers.quarterly]
min_days = 60
max_days = 120
trigger = {{ min_level = "elevated" }}
size = {{ fraction_of_x_max = 0.4 }}
roll = {{ days_before_expiry = 30 }}
premium = {{ max_pct_of_spot = 0.06 }}
"""


def _signed(p: G.OverrideProposal, *accounts: LocalAccount) -> list[dict[str, Any]]:
    return [json.loads(json.dumps(G.sign_override(p, a))) for a in accounts]


def _approved(safe: S.SafeAdapter, owners: list[LocalAccount], store: AuditStore, pool: str) -> G.LoadedPolicy:
    pins = "owners = [" + ", ".join(f'"{o.address}"' for o in owners) + "]\nthreshold = 2"
    content = (POLICY_TEXT + CUSTOM_LAYERS).format(tighten="false", pool=pool, pins=pins).encode()
    gate = G.PolicyGate(safe, store)
    gate.approve(content, [G.sign_policy(content, o, safe.chain_id, safe.address) for o in (owners[0], owners[2])])
    return gate.load_bytes(content)


def test_override_naming_a_custom_layer_of_the_approved_policy_applies(
    safe: S.SafeAdapter, owners: list[LocalAccount], store: AuditStore, policy_text: str
) -> None:
    pool = policy_text.split('pool = "')[1].split('"')[0]
    loaded = _approved(safe, owners, store, pool)
    assert loaded.from_file and loaded.layers == ("weekly", "quarterly")
    p = G.propose_override("pause_layer", {"layer": "weekly"}, "weekly puts too dear", safe.chain_id,
                           safe.address, 7, NOW + 3600, loaded.layers)
    applied = G.OverrideGate(safe, store, loaded.governance, loaded.layers).apply([p.to_json(), *_signed(p, owners[0], owners[1])], now=NOW)
    assert (applied.record.kind, applied.record.params, applied.required) == ("pause_layer", '{"layer":"weekly"}', 2)
    assert [o.params for o in store.active_overrides(safe.chain_id, safe.address, NOW)] == ['{"layer":"weekly"}']


def test_layer_the_approved_policy_does_not_declare_is_refused(
    safe: S.SafeAdapter, owners: list[LocalAccount], store: AuditStore, policy_text: str
) -> None:
    pool = policy_text.split('pool = "')[1].split('"')[0]
    loaded = _approved(safe, owners, store, pool)
    with pytest.raises(G.OverrideRefused, match=r"^layer must be one of weekly, quarterly$"):
        G.propose_override("pause_layer", {"layer": "short"}, "r", safe.chain_id, safe.address, 8,
                           NOW + 3600, loaded.layers)
    # proposed against the default layers elsewhere, then applied under this policy: refused
    p = G.propose_override("pause_layer", {"layer": "short"}, "r", safe.chain_id, safe.address, 8, NOW + 3600)
    with pytest.raises(G.OverrideRefused, match=r"^layer must be one of weekly, quarterly$"):
        G.OverrideGate(safe, store, loaded.governance, loaded.layers).apply([p.to_json(), *_signed(p, owners[0], owners[1])], now=NOW)
    assert [e.reason for e in store.events(event="refusal")] == ["layer must be one of weekly, quarterly"]
    assert store.active_overrides(safe.chain_id, safe.address, NOW) == []


def test_without_a_policy_the_default_layers_apply() -> None:
    assert G.LAYERS == DEFAULT_LAYERS == ("short", "intermediate", "structural")
    G.validate_override("pause_layer", {"layer": "structural"}, "r")
    with pytest.raises(G.OverrideRefused, match=r"^layer must be one of short, intermediate, structural$"):
        G.validate_override("pause_layer", {"layer": "weekly"}, "r")
