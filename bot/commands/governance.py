"""CLI: governance. `lphedge policy approve|verify`, `lphedge override propose|sign|apply|list`,
`lphedge roles setup|deploy`.

Keys come only from a key file or an environment variable named on the command line; they
are never printed or logged. Hashes are always recomputed locally from the fields.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:  # web3 and eth_account are imported inside the commands: fast start-up
    from eth_account.signers.local import LocalAccount

from bot.errors import Refused, Transient, UserError

policy_app = typer.Typer(help="Approve the policy the bot runs (a Safe signature over its hash).", no_args_is_help=True)
override_app = typer.Typer(help="Threshold-signed overrides (EIP-712 typed messages).", no_args_is_help=True)
roles_app = typer.Typer(help="The bot's on-chain scope: a Zodiac Roles v2 modifier.", no_args_is_help=True)

RpcOpt = Annotated[str | None, typer.Option("--rpc-url", help="RPC URL (default: LPHEDGE_RPC_URLS)")]
SafeOpt = Annotated[str | None, typer.Option("--safe", help="Safe address (default: LPHEDGE_OWNER)")]
DbOpt = Annotated[str | None, typer.Option("--db", help="SQLAlchemy URL (default: settings)")]
JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output")]
KeyFileOpt = Annotated[Path | None, typer.Option("--key-file", help="file holding the signer's private key")]
KeyEnvOpt = Annotated[str | None, typer.Option("--key-env", help="name of the env variable holding the key")]
OutOpt = Annotated[Path | None, typer.Option("--out", "-o", help="write the JSON here too")]


# ------------------------------------------------------------------------------ plumbing
def _settings() -> Any:
    from bot.settings import load_settings

    return load_settings()


def _connection(rpc_url: str | None) -> Any:
    """The chain connection of the governance commands: every URL of the settings' chain (or
    the one --rpc-url), with failover, the settings' timeout and the chain id checked."""
    from adapters.evm.chain import ChainConnection
    from adapters.evm.rpc import RpcUnavailable

    settings = _settings()
    _check_rpc_url(rpc_url)
    urls = [rpc_url] if rpc_url else list(settings.rpc_url_list)
    if not urls:
        raise UserError("no RPC: pass --rpc-url or set LPHEDGE_RPC_URLS")
    conn = ChainConnection(urls, chain_id=settings.chain_id, timeout=settings.rpc_timeout,
                           rate_limit=settings.rpc_rate_limit)
    try:
        conn.connect_sync()  # WrongChain (Refused) passes through as is
    except RpcUnavailable as exc:
        raise Transient(f"RPC unreachable: {exc}") from None
    return conn


def _safe(rpc_url: str | None, safe: str | None) -> Any:
    from adapters.evm.safe import SafeAdapter
    from policies.address import parse_address  # the one address parser (EIP-55)

    address = safe or _settings().owner
    if not address:
        raise UserError("Safe address missing (pass --safe)")
    address = parse_address(address, "--safe")  # before any network call
    conn = _connection(rpc_url)
    chain = _settings().chain
    from web3.exceptions import BadFunctionCallOutput, ContractLogicError

    from adapters.evm.safe import SafeError

    try:
        sa = SafeAdapter.from_connection(conn, address, max_block_age=chain.max_block_age,
                                         max_block_lag=chain.max_block_lag)
        # a Safe answers these; a wallet, a token or another contract does not (an
        # unanswered call used to surface as "error: ContractLogicError", exit 1)
        sa.contract.functions.VERSION().call()
        sa.contract.functions.getThreshold().call()
    except SafeError as exc:
        if isinstance(exc, Transient):
            raise
        raise UserError(f"--safe {address}: {exc}") from None
    except (ContractLogicError, BadFunctionCallOutput):
        raise UserError(f"--safe {address} is not a Safe (VERSION()/getThreshold() revert)") from None
    return sa


def _in_force(sa: Any, store: Any) -> Any:
    """The approved policy in force (its rules, layers, hash), or None when none is recorded."""
    from bot import governance as G

    gate = G.PolicyGate(sa, store)
    try:
        return gate.in_force()
    except G.PolicyNotApproved:
        if not store.policy_approvals(sa.chain_id, sa.address):
            return None  # nothing approved yet: strict defaults, overrides bound to no policy
        raise


def _refuse_policy_option(policy: Path | None) -> None:
    if policy is not None:
        raise UserError("--policy is not accepted: the governance rules come only from the "
                        "approved policy in force (`lphedge policy verify` names it)")


def _store(db: str | None) -> Any:
    from adapters.redact import redact_urls
    from bot.audit_store import AuditStore

    url = db or _settings().sqlalchemy_url
    try:
        return AuditStore(url)
    except UserError:  # bot.db's own line: URL with the password hidden, and the reason
        raise
    except Exception as exc:  # anything else; the URL may carry a password
        from bot.store import safe_db_url

        raise UserError(
            f"cannot open the audit database {redact_urls(safe_db_url(url))}: {type(exc).__name__}"
        ) from None


def _check_rpc_url(rpc_url: str | None, flag: str = "--rpc-url") -> None:
    if rpc_url is not None and not rpc_url.startswith(("http://", "https://")):
        raise UserError(f"{flag} must be an http(s) URL")  # not echoed: it may carry a key


def _check_db_url(db: str | None) -> None:
    """--db's syntax, before any network call (the store itself is opened after the RPC)."""
    import re

    if db is not None and not re.match(r"^[\w+]+://", db):  # make_url's scheme pattern
        raise UserError("database <unparsable database_url>: --db: Could not parse SQLAlchemy URL "
                        "(dialect[+driver]://..., e.g. sqlite:///lphedge.db)")


def _check_out(out: Path | None) -> None:
    """-o is checked before anything is read from the chain or recorded."""
    from bot.commands.files import check_out_path

    if out is not None:
        check_out_path(out, "--out")


def _read_bytes(path: Path, what: str = "") -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise UserError(f"cannot read {what}{path}: {exc.strerror}") from None


def _policy_bytes(path: Path, flag: str = "") -> bytes:
    """A policy file's bytes, parsed once here so that a file that is no policy is named
    (with its path) before any network call."""
    from bot import governance as G

    content = _read_bytes(path, "policy file ")
    try:
        G.policy_hash_of_bytes(content)
    except G.GovernanceError as exc:
        raise UserError(f"{flag}{path}: {exc}") from None
    return content


def _check_local(*, out: Path | None = None, db: str | None = None, rpc_url: str | None = None,
                 safe: str | None = None) -> None:
    """Everything about a governance command's arguments that needs no network, checked
    before the first RPC call: bad input is named, never hidden behind "RPC unreachable"."""
    from policies.address import parse_address

    _check_rpc_url(rpc_url)
    if safe:
        parse_address(safe, "--safe")
    _check_db_url(db)
    _check_out(out)


def load_key(key_file: Path | None, key_env: str | None) -> LocalAccount:
    """A signer from a key file or a named env variable; the key itself is never echoed."""
    if (key_file is None) == (key_env is None):
        raise UserError("give exactly one of --key-file or --key-env")
    if key_file is not None:
        try:
            raw = key_file.read_bytes().decode("ascii").strip()
        except OSError as exc:
            raise UserError(f"cannot read key file {key_file}: {exc.strerror}") from None
        except UnicodeDecodeError:  # the bytes are never echoed: they may be the key
            raise UserError(f"key file {key_file} does not hold a hex private key (not text)") from None
        source = f"key file {key_file}"
    else:
        raw = os.environ.get(str(key_env), "").strip()
        source = f"env variable {key_env}"
        if not raw:
            raise UserError(f"{source} is empty or unset")
    from eth_account import Account

    try:
        account: LocalAccount = Account.from_key(raw)
    except Exception:
        raise UserError(f"{source} does not hold a valid private key") from None
    return account


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise UserError(f"{path} is not JSON: not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise UserError(f"{path} is not JSON: {exc.msg} at line {exc.lineno}") from None
    if not isinstance(data, dict):
        raise UserError(f"{path} must hold a JSON object")
    return data


def _emit(data: dict[str, Any], out: Path | None) -> None:
    text = json.dumps(data, indent=2, sort_keys=True)
    if out is not None:
        out.write_text(text + "\n")
    print(text)


# ---------------------------------------------------------------------------------- policy
@policy_app.command("approve")
def policy_approve(
    file: Annotated[Path, typer.Argument(help="policy file (TOML)")],
    key_file: KeyFileOpt = None,
    key_env: KeyEnvOpt = None,
    out: OutOpt = None,
    rpc_url: RpcOpt = None,
    safe: SafeOpt = None,
) -> None:
    """Without a key: print what the owners sign (for Safe{Wallet}). With one: sign it."""
    from bot import governance as G

    content = _policy_bytes(file)
    _check_local(out=out, rpc_url=rpc_url, safe=safe)
    account = None if key_file is None and key_env is None else load_key(key_file, key_env)
    try:
        sa = _safe(rpc_url, safe)
        if account is None:
            req = G.approval_request(G.policy_hash_of_bytes(content), sa.chain_id, sa.address)
            if sa.get_message_hash(req.data_hash) != req.safe_message_hash:
                raise Refused("the Safe's getMessageHash disagrees with the local hash; refusing")
            _emit({"chain_id": sa.chain_id, "safe": sa.address, **req.to_json()}, out)
            return
        doc = G.sign_policy(content, account, sa.chain_id, sa.address)
    except OSError as exc:
        raise UserError(f"cannot read {file}: {exc.strerror}") from None
    _emit(doc, out)


@policy_app.command("verify")
def policy_verify(
    file: Annotated[Path, typer.Argument(help="policy file (TOML)")],
    signatures: Annotated[list[Path] | None, typer.Argument(help="owners' signature files")] = None,
    rpc_url: RpcOpt = None,
    safe: SafeOpt = None,
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """With signature files: verify on-chain (EIP-1271) and record the approval.
    Without: tell whether this file is the approved policy (exit 2 if not)."""
    from bot import governance as G

    content = _policy_bytes(file)
    docs = [_read_json(p) for p in signatures or []]
    _check_local(db=db, rpc_url=rpc_url, safe=safe)
    sa, store = _safe(rpc_url, safe), _store(db)
    gate = G.PolicyGate(sa, store)
    try:
        if signatures:
            approval = gate.approve(content, docs, source=str(file))
            result = {"approved": True, "policy_hash": approval.policy_hash, "sequence": approval.sequence,
                      "safe": sa.address, "chain_id": sa.chain_id}
        else:
            loaded = gate.load(file)
            if not loaded.from_file:
                raise UserError(loaded.warning)
            result = {"approved": True, "policy_hash": "0x" + loaded.policy_hash.hex(), "sequence": loaded.sequence,
                      "safe": sa.address, "chain_id": sa.chain_id}
    except OSError as exc:
        raise UserError(f"cannot read {file}: {exc.strerror}") from None
    if as_json:
        print(json.dumps(result))
    else:
        print(f"approved: policy {result['policy_hash']} by Safe {sa.address} (chain {sa.chain_id}); "
              f"sequence {result['sequence']} in force")


# -------------------------------------------------------------------------------- override
def _parse_params(items: list[str]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise UserError(f"--param {item!r}: expected key=value")
        k, v = item.split("=", 1)
        params[k.strip()] = v.strip()
    return params


@override_app.command("propose")
def override_propose(
    kind: Annotated[str, typer.Option("--kind", help="pause_layer, resume_layer, close_protection_early, change_cap, disable_hedging, emergency_exit, pause_new_risk, add_protection")],
    reason: Annotated[str, typer.Option("--reason", help="why (signed, kept in the audit)")],
    param: Annotated[list[str] | None, typer.Option("--param", help="key=value, repeatable")] = None,
    ttl_hours: Annotated[float, typer.Option("--ttl-hours", help="expiry from now")] = 24.0,
    nonce: Annotated[int | None, typer.Option("--nonce", help="default: next unused")] = None,
    out: OutOpt = None,
    rpc_url: RpcOpt = None,
    safe: SafeOpt = None,
    db: DbOpt = None,
    policy: Annotated[Path | None, typer.Option("--policy", help="not accepted: layers and rules come from the approved policy in force", hidden=True)] = None,
) -> None:
    """Print the override's hash and typed data (JSON) for the owners to sign."""

    _refuse_policy_option(policy)
    _propose(kind, _parse_params(param or []), reason, ttl_hours, nonce, out, rpc_url, safe, db)


MAX_TTL_HOURS = 24 * 366  # an override proposal lives hours or days, never years
MAX_NONCE = 2**63 - 1  # stored in a signed 64-bit column (SQLite INTEGER, PostgreSQL BIGINT)


def _check_ttl_nonce(ttl_hours: float, nonce: int | None) -> None:
    if not math.isfinite(ttl_hours) or not 0 < ttl_hours <= MAX_TTL_HOURS:
        raise UserError(f"--ttl-hours must be a number of hours in (0, {MAX_TTL_HOURS}], got {ttl_hours}")
    if nonce is not None and not 0 <= nonce <= MAX_NONCE:
        raise UserError(f"--nonce must be in [0, 2^63 - 1], got {nonce}")


def _propose(kind: str, params: dict[str, Any], reason: str, ttl_hours: float, nonce: int | None,
             out: Path | None, rpc_url: str | None, safe: str | None, db: str | None) -> None:
    """Propose under the approved policy in force: its layers, bound to its hash."""
    from bot import governance as G

    _check_ttl_nonce(ttl_hours, nonce)
    # kind, params and reason now; the layer is checked against the policy in force below
    G.validate_override(kind, params, reason, (params["layer"],) if "layer" in params else G.LAYERS)
    _check_local(out=out, db=db, rpc_url=rpc_url, safe=safe)
    sa, store = _safe(rpc_url, safe), _store(db)
    n = store.next_override_nonce(sa.chain_id, sa.address) if nonce is None else nonce
    loaded = _in_force(sa, store)
    gate = G.OverrideGate.for_policy(sa, store, loaded)
    prop = G.propose_override(kind, params, reason, sa.chain_id, sa.address, n,
                              int(time.time() + ttl_hours * 3600), gate.layers, policy_hash=gate.policy_hash)
    if sa.get_message_hash(prop.override_hash) != prop.safe_message_hash:
        raise Refused("the Safe's getMessageHash disagrees with the local hash; refusing")
    gate.record_proposal(prop)
    _emit(prop.to_json(), out)


@override_app.command("cancel")
def override_cancel(
    target: Annotated[int, typer.Argument(help="nonce of the applied override to cancel")],
    reason: Annotated[str, typer.Option("--reason", help="why (signed, kept in the audit)")],
    ttl_hours: Annotated[float, typer.Option("--ttl-hours", help="expiry of the proposal from now")] = 24.0,
    nonce: Annotated[int | None, typer.Option("--nonce", help="default: next unused")] = None,
    out: OutOpt = None,
    rpc_url: RpcOpt = None,
    safe: SafeOpt = None,
    db: DbOpt = None,
) -> None:
    """Propose cancelling an applied override: a cancel_override, signed and applied like any
    override; loosening, so it always needs the threshold."""
    if not 0 <= target <= MAX_NONCE:
        raise UserError(f"NONCE (the override to cancel) must be in [0, 2^63 - 1], got {target}")
    _propose("cancel_override", {"nonce": target}, reason, ttl_hours, nonce, out, rpc_url, safe, db)


@override_app.command("sign")
def override_sign(
    file: Annotated[Path, typer.Argument(help="the proposal JSON from `override propose`")],
    key_file: KeyFileOpt = None,
    key_env: KeyEnvOpt = None,
    out: OutOpt = None,
    policy: Annotated[Path | None, typer.Option("--policy", help="the policy whose layers the override may name; default short/intermediate/structural")] = None,
) -> None:
    """An owner signs locally (offline: no RPC needed). Hashes are recomputed from the fields."""
    from bot import governance as G

    doc = _read_json(file)
    layers = G.LAYERS
    if policy is not None:
        layers = G.policy_layers(_policy_bytes(policy, "--policy "))
    prop = G.proposal_from_typed_data(doc.get("typed_data") or {}, layers)
    claimed = doc.get("override_hash")
    if claimed and claimed.lower() != "0x" + prop.override_hash.hex():
        raise UserError(f"{file} claims hash {claimed} but its fields hash to 0x{prop.override_hash.hex()}")
    _check_out(out)  # before the key is read
    signed = G.sign_override(prop, load_key(key_file, key_env))
    _emit(signed, out)
    print(f"signed override 0x{prop.override_hash.hex()} as {signed['signer']}", file=sys.stderr)


@override_app.command("apply")
def override_apply(
    files: Annotated[list[Path], typer.Argument(help="the proposal and/or signature files")],
    policy: Annotated[Path | None, typer.Option("--policy", help="not accepted: the rules come from the approved policy in force", hidden=True)] = None,
    rpc_url: RpcOpt = None,
    safe: SafeOpt = None,
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Verify against the Safe's current owners and threshold, apply once, record."""
    from bot import governance as G

    _refuse_policy_option(policy)
    docs = [_read_json(f) for f in files]
    _check_local(db=db, rpc_url=rpc_url, safe=safe)
    sa, store = _safe(rpc_url, safe), _store(db)
    gate = G.OverrideGate.for_policy(sa, store, _in_force(sa, store))
    applied = gate.apply(docs, now=int(time.time()))
    r = applied.record
    result = {"applied": True, "override_hash": r.override_hash, "kind": r.kind, "params": json.loads(r.params),
              "nonce": r.nonce, "expiry": r.expiry, "signers": applied.signers, "required": applied.required}
    if as_json:
        print(json.dumps(result))
    else:
        print(f"applied {r.kind} {r.params} (nonce {r.nonce}, {len(applied.signers)}/{applied.required} owner signatures, expires {r.expiry})")


@override_app.command("list")
def override_list(rpc_url: RpcOpt = None, safe: SafeOpt = None, db: DbOpt = None, as_json: JsonOpt = False) -> None:
    """Overrides in force now: under the approved policy in force, re-verified on-chain."""
    from bot import governance as G

    _check_local(db=db, rpc_url=rpc_url, safe=safe)
    sa, store = _safe(rpc_url, safe), _store(db)
    gate = G.OverrideGate.for_policy(sa, store, _in_force(sa, store))
    rows = gate.in_force(int(time.time()))
    data = [{"override_hash": r.override_hash, "kind": r.kind, "params": json.loads(r.params), "nonce": r.nonce,
             "expiry": r.expiry, "signers": r.signers.split(",")} for r in rows]
    if as_json:
        print(json.dumps(data))
    elif not data:
        print("no override in force")
    else:
        for d in data:
            print(f"{d['kind']} {d['params']} nonce {d['nonce']} expires {d['expiry']} by {', '.join(d['signers'])}")


# ----------------------------------------------------------------------------------- roles
@roles_app.command("setup")
def roles_setup(
    roles: Annotated[str, typer.Option("--roles", help="the Roles modifier (owner, avatar, target = the Safe)")],
    bot: Annotated[str, typer.Option("--bot", help="the bot's address (not an owner)")],
    position_manager: Annotated[str, typer.Option("--position-manager")],
    swap_router: Annotated[str, typer.Option("--swap-router")],
    multisend_call_only: Annotated[str, typer.Option("--multisend-call-only")],
    factory: Annotated[str, typer.Option("--factory", help="the Uniswap v3 factory (the oracle condition checks pools against it)")],
    token: Annotated[list[str] | None, typer.Option("--token", help="ERC20 the bot may approve to NPM/router; repeatable (default: the [scope] limits' tokens)")] = None,
    condition: Annotated[str | None, typer.Option("--condition", help="a deployed OracleBoundCondition (verified); default: deploy one with --key-file/--key-env")] = None,
    key_file: KeyFileOpt = None,
    key_env: KeyEnvOpt = None,
    role: Annotated[str, typer.Option("--role", help="role name (bytes32)")] = "lphedge-bot",
    fork_url: Annotated[str | None, typer.Option("--fork-url", help="anvil fork to simulate on (default: start one)")] = None,
    out: OutOpt = None,
    rpc_url: RpcOpt = None,
    safe: SafeOpt = None,
    db: DbOpt = None,
) -> None:
    """Produce the SafeTx (enableModule + the bounded role scope of the approved policy's
    [scope], one MultiSendCallOnly batch) for the owners to sign, after the pre-flight: the
    oracle condition verified, the batch equal byte for byte to the permission table's, a
    fork simulation after which every forbidden call of the bot reverts."""
    from web3 import Web3

    from adapters.anvil import Anvil, AnvilError
    from adapters.evm import roles as R
    from adapters.evm import safe as S
    from bot import preflight as P
    from policies.address import parse_address  # the one address parser (EIP-55)
    from policies.policy_file import Scope

    for name, addr in (("--roles", roles), ("--bot", bot), ("--position-manager", position_manager),
                       ("--swap-router", swap_router), ("--multisend-call-only", multisend_call_only),
                       ("--factory", factory), *[("--token", t) for t in token or []],
                       *([("--condition", condition)] if condition else [])):
        parse_address(addr, name)  # before any network call
    if condition is None and key_file is None and key_env is None:
        if safe:
            parse_address(safe, "--safe")  # a bad --safe is named first
        raise UserError("give --condition (a deployed OracleBoundCondition) or --key-file/--key-env to deploy one")
    _check_local(out=out, db=db, rpc_url=rpc_url, safe=safe)
    _check_rpc_url(fork_url, "--fork-url")
    try:
        role_key = R.role_key(role)
    except R.RolesError as exc:
        raise UserError(f"--role: {exc}") from None
    deployer = "" if condition else load_key(key_file, key_env).key.hex()
    sa, store = _safe(rpc_url, safe), _store(db)
    if Web3.to_checksum_address(bot) in sa.owners():
        raise UserError(f"{bot} is an owner of the Safe; the bot's key must not be")
    loaded = _in_force(sa, store)
    if loaded is None:
        raise UserError("no approved policy in force: the bot's scope comes from its [scope] section "
                        "(`lphedge policy verify POLICY SIGNATURES...` first)")
    pscope = loaded.policy.scope
    if pscope == Scope():
        raise UserError("the approved policy in force has no [scope] section: the bot's value bounds come from it")
    tokens = tuple(token) if token else tuple(Web3.to_checksum_address(t.token) for t in pscope.limits)
    if not tokens:
        raise UserError("no token: pass --token or list [scope] limits in the policy")
    feeds: dict[str, str] = {Web3.to_checksum_address(t): Web3.to_checksum_address(f) for t, f in pscope.oracles.items()}
    try:
        scope = R.bounded_scope(sa.w3, deployer, position_manager=position_manager, swap_router=swap_router,
                                factory=factory, tokens=tokens, policy_scope=pscope, condition=condition)
        setup = P.RolesSetup(Web3.to_checksum_address(roles), Web3.to_checksum_address(bot), role_key,
                             scope, Web3.to_checksum_address(factory), feeds, pscope.max_oracle_age_seconds)
        tx = S.multisend_call_only_tx(sa, multisend_call_only, setup.calls(sa.w3, sa.address))
        fork = None
        if fork_url is None:
            fork = Anvil(fork_url=sa.rpc_urls[0], fork_fallbacks=tuple(sa.rpc_urls[1:]), chain_id=sa.chain_id,
                         code_size_limit=True).start()
        try:
            report = P.preflight_roles_setup(sa, tx, setup, multisend_call_only=multisend_call_only,
                                             fork_url=fork_url or (fork.url if fork else None), store=store)
        finally:
            if fork is not None:
                fork.stop()
    except AnvilError as exc:
        from adapters.redact import redact_urls

        # keep the branch: anvil missing is InvalidInput, anvil failing is Transient
        cls = Transient if isinstance(exc, Transient) else UserError
        raise cls(f"fork simulation unavailable: {redact_urls(str(exc))}") from None
    assert scope.bounds is not None  # bounded_scope always binds bounds
    store.record("proposal", "roles", report.safe_tx_hash, sa.chain_id, sa.address, detail=report.to_json())
    _emit({
        "safe": sa.address, "chain_id": sa.chain_id, "nonce": tx.safe_nonce,
        "to": tx.to, "value": tx.value, "data": "0x" + bytes(tx.data).hex(), "operation": tx.operation,
        "typed_data": S.safe_tx_typed_data(tx), "condition": scope.bounds.condition,
        "policy_hash": "0x" + loaded.policy_hash.hex(), **report.to_json(),
    }, out)


@roles_app.command("deploy")
def roles_deploy(
    key_file: KeyFileOpt = None,
    key_env: KeyEnvOpt = None,
    condition: Annotated[bool, typer.Option("--condition", help="also deploy the OracleBoundCondition of the approved policy's [scope] (needs --position-manager, --factory)")] = False,
    position_manager: Annotated[str | None, typer.Option("--position-manager")] = None,
    factory: Annotated[str | None, typer.Option("--factory")] = None,
    rpc_url: RpcOpt = None,
    safe: SafeOpt = None,
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Deploy a Roles modifier owned by the Safe (local chains and forks; on mainnet use the
    canonical mastercopy through the ModuleProxyFactory); with --condition also the oracle
    condition of the approved policy's [scope] (verified after deployment)."""
    from adapters.evm import roles as R
    from policies.address import parse_address
    from policies.policy_file import Scope

    if condition:
        if position_manager is None or factory is None:
            raise UserError("--condition needs --position-manager and --factory")
        position_manager = parse_address(position_manager, "--position-manager")
        factory = parse_address(factory, "--factory")
    account = load_key(key_file, key_env)
    _check_local(db=db, rpc_url=rpc_url, safe=safe)
    sa = _safe(rpc_url, safe)
    result: dict[str, str] = {}
    if condition:
        assert position_manager is not None and factory is not None
        loaded = _in_force(sa, _store(db))
        if loaded is None or loaded.policy.scope == Scope():
            raise UserError("--condition needs an approved policy in force with a [scope] section")
        pscope = loaded.policy.scope
        feeds = {str(parse_address(t, "scope.oracles")): str(parse_address(f, "scope.oracles"))
                 for t, f in pscope.oracles.items()}
        result["condition"] = R.deploy_oracle_condition(sa.w3, account.key.hex(), position_manager, factory,
                                                        pscope.max_oracle_age_seconds, feeds)
        R.verify_oracle_condition(sa.w3, result["condition"], position_manager=position_manager, factory=factory,
                                  max_oracle_age_s=pscope.max_oracle_age_seconds, feeds=feeds)
    result["roles"] = R.deploy_roles(sa.w3, account.key.hex(), sa.address, sa.address, sa.address)
    if as_json:
        print(json.dumps(result))
    else:
        print(f"Roles modifier deployed at {result['roles']} (owner: Safe {sa.address})")
        if condition:
            print(f"OracleBoundCondition deployed at {result['condition']} (pass it to `roles setup --condition`)")


def register(app: typer.Typer) -> None:
    """Add this module's commands to the app."""
    app.add_typer(policy_app, name="policy")
    app.add_typer(override_app, name="override")
    app.add_typer(roles_app, name="roles")
