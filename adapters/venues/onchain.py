"""The on-chain venue: LP exits and swaps of the Safe, through its Zodiac Roles modifier
(execTransactionWithRole, signed by the bot key), only within the bounded scope.

What it does:

- ``exit_lp``: NonfungiblePositionManager.decreaseLiquidity with minimum amounts from a
  static call of the same decrease from the Safe at the current pool state, less the
  policy's slippage (never zero where the position yields the token: at least 1 wei), then
  collect with the Safe as recipient. Two transactions: the bot's scope has no NPM
  multicall (adapters/evm/permissions.py), so each call is checked on its own.
- ``swap``: SwapRouter.exactInputSingle to the Safe, after an exact approval of amountIn
  when the router's allowance is short. amountOutMinimum is the larger of the oracle floor
  the on-chain condition enforces (OracleBoundCondition.swapFloor: amountIn at the
  Chainlink prices less max_slippage_bps) and a static quote of the same swap from the Safe
  less the slippage; a quote under the floor (the pool worse than the oracle allows) is
  refused.

Before anything is signed, every call is refused (:class:`OnchainRefused`) unless it
passes (1) the venue's own intent checks: a listed (tokenIn, tokenOut, fee) route, amountIn
within the token's allowance per period, the recipient the Safe, a position the Safe
holds; (2) the one permission table (permissions.check_arguments on the decoded call:
the same conditions Roles was set up from); (3) an eth_call of execTransactionWithRole from
the bot (Roles' own answer, with its reason: allowance left, oracle floor, exits per
period). Nothing reaches the node's mempool for a refused intent.

Every transaction goes through the one sender (adapters/evm/tx.py) with a journal
(bot/tx_journal.py, by the :class:`JournalPort` protocol: adapters do not import bot) that
commits it before its broadcast, a ``fence`` (the lease) asked right before each broadcast,
and the crash harness' ``checkpoint``. Each step has a client id ``<intent id>:<step>``
(decrease, collect, approve, swap): a step the journal holds is never sent again; a
confirmed one is read back from its receipt, an unresolved one must be recovered first
(``reconcile``: re-check confirmed steps against reorgs, then resolve by receipt and nonce).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from eth_account.signers.local import LocalAccount
from eth_typing import ChecksumAddress
from eth_utils.address import to_checksum_address
from hexbytes import HexBytes
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import (
    ContractCustomError,
    ContractLogicError,
    ContractPanicError,
    TransactionNotFound,
)
from web3.logs import DISCARD
from web3.types import TxReceipt

from adapters.evm import permissions as perm
from adapters.evm.roles import condition_artifact, roles_artifacts, uniswap_abi
from adapters.evm.tx import TxJournalHook, TxSender, explain_revert
from policies.errors import Refused, Transient

__all__ = ["ExitResult", "JournalPort", "OnchainRefused", "OnchainUnresolved", "OnchainVenue",
           "SwapResult"]

MAX_UINT128 = (1 << 128) - 1
BPS = 10_000
ERC20_ABI: list[dict[str, Any]] = [
    {"name": "allowance", "type": "function", "stateMutability": "view",
     "inputs": [{"name": "owner", "type": "address"}, {"name": "spender", "type": "address"}],
     "outputs": [{"name": "", "type": "uint256"}]},
    {"name": "balanceOf", "type": "function", "stateMutability": "view",
     "inputs": [{"name": "owner", "type": "address"}], "outputs": [{"name": "", "type": "uint256"}]},
    {"name": "approve", "type": "function", "stateMutability": "nonpayable",
     "inputs": [{"name": "spender", "type": "address"}, {"name": "amount", "type": "uint256"}],
     "outputs": [{"name": "", "type": "bool"}]},
    {"name": "Transfer", "type": "event", "anonymous": False,
     "inputs": [{"name": "from", "type": "address", "indexed": True},
                {"name": "to", "type": "address", "indexed": True},
                {"name": "value", "type": "uint256", "indexed": False}]},
]


class OnchainRefused(Refused):
    """An intent outside the bounded scope, or one Roles refuses in simulation: nothing sent."""


class OnchainUnresolved(Transient):
    """A step of this intent was journaled and is not resolved (pending, broadcast, reorged):
    recover (``reconcile``) before acting on it again."""


class JournalPort(TxJournalHook, Protocol):
    """What the venue needs from the transaction journal (bot/tx_journal.TxJournal)."""

    def get(self, client_id: str) -> Any: ...  # .state (str), .tx_hash (bytes), or None

    def intent_outcome(self, intent_id: str, steps: tuple[str, ...] = ()) -> str: ...

    def recheck(self, w3: Web3) -> Sequence[Any]: ...

    def recover(self, sender: TxSender, *, wait: bool = True) -> Sequence[Any]: ...


@dataclass(frozen=True, slots=True)
class ExitResult:
    intent_id: str
    token_id: int
    liquidity: int
    amount0_min: int
    amount1_min: int
    amount0: int  # DecreaseLiquidity event
    amount1: int
    collected0: int  # Collect event (principal + fees owed), sent to the Safe
    collected1: int
    tx_hashes: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class SwapResult:
    intent_id: str
    token_in: str
    token_out: str
    fee: int
    amount_in: int
    amount_out_minimum: int
    oracle_floor: int | None  # None: read back from a step sent earlier (not recomputed)
    quote: int | None
    amount_out: int  # the tokenOut Transfer to the Safe
    tx_hashes: tuple[bytes, ...]


def _same(a: str, b: str) -> bool:
    return a.lower() == b.lower()


def min_after_slippage(amount: int, bps: int) -> int:
    """``amount`` less ``bps`` (rounded down), and never zero for a non-zero amount: a
    minimum of 0 would accept any outcome."""
    if amount <= 0:
        return 0
    return max(1, amount * (BPS - bps) // BPS)


class OnchainVenue:
    """The Safe's on-chain actions through its Roles modifier (see the module docstring)."""

    name = "onchain"

    def __init__(self, w3: Web3, *, safe: str, roles: str, role_key: bytes, bot: LocalAccount | str,
                 scope: perm.BotScope, factory: str, journal: JournalPort | None = None,
                 fence: Callable[[], None] | None = None,
                 checkpoint: Callable[[str], None] | None = None,
                 slippage_bps: int | None = None, deadline_s: int = 600,
                 receipt_timeout: float = 120.0) -> None:
        if scope.bounds is None:
            raise OnchainRefused("the on-chain venue acts only within a bounded scope (the approved [scope])")
        self.bounds = scope.bounds
        bps = self.bounds.max_slippage_bps if slippage_bps is None else slippage_bps
        if not 0 <= bps <= self.bounds.max_slippage_bps:
            raise OnchainRefused(f"slippage {bps} bps outside [0, {self.bounds.max_slippage_bps}] of the scope")
        self.slippage_bps = bps
        self.w3 = w3
        self.safe = to_checksum_address(safe)
        self.scope = scope
        self.role_key = role_key
        self.journal = journal
        self.deadline_s = deadline_s
        self.sender = TxSender(w3, bot, receipt_timeout=receipt_timeout, journal=journal, fence=fence,
                               checkpoint=checkpoint)
        self.roles = w3.eth.contract(address=to_checksum_address(roles), abi=roles_artifacts()["Roles"]["abi"])
        self.npm = w3.eth.contract(address=to_checksum_address(scope.position_manager),
                                   abi=uniswap_abi("NonfungiblePositionManager"))
        self.router = w3.eth.contract(address=to_checksum_address(scope.swap_router), abi=uniswap_abi("SwapRouter"))
        self.factory = to_checksum_address(factory)
        self.condition = w3.eth.contract(address=to_checksum_address(self.bounds.condition),
                                         abi=condition_artifact()["abi"])
        self._grants = {(g.target, g.selector): g for g in perm.grants(scope)}
        self._ctx = perm.Context(scope, avatar=self.safe)

    @property
    def bot(self) -> ChecksumAddress:
        return self.sender.address

    def _erc20(self, token: str) -> Contract:
        return self.w3.eth.contract(address=to_checksum_address(token), abi=ERC20_ABI)

    def _deadline(self) -> int:
        """The chain's clock (its latest block), not ours, plus ``deadline_s``."""
        return int(self.w3.eth.get_block("latest")["timestamp"]) + self.deadline_s

    # ------------------------------------------------------------------ checks
    def check(self, to: str, data: bytes) -> None:
        """The permission table on the decoded call, then Roles' own answer (eth_call of
        execTransactionWithRole from the bot): OnchainRefused naming the reason."""
        to = to_checksum_address(to)
        grant = self._grants.get((to, bytes(data[:4])))
        if grant is None:
            raise OnchainRefused(f"{to} selector 0x{bytes(data[:4]).hex()} is not in the bot's permissions")
        fn = self.w3.eth.contract(address=to, abi=[grant.abi])
        try:
            _, args = fn.decode_function_input(data)
        except Exception as exc:  # eth_abi's decoding errors: not a call we built
            raise OnchainRefused(f"{grant.permission.function}: calldata does not decode ({exc})") from None
        why = perm.check_arguments(grant, dict(args), self._ctx)
        if why is not None:
            raise OnchainRefused(f"outside the bot's permissions: {why}")
        try:
            self._exec(to, data).call({"from": self.bot})
        except (ContractCustomError, ContractLogicError, ContractPanicError) as exc:
            raise OnchainRefused(f"Roles refused {grant.permission.function} in simulation: "
                                 f"{explain_revert(exc)}") from None

    def _exec(self, to: str, data: bytes) -> Any:
        return self.roles.functions.execTransactionWithRole(to_checksum_address(to), 0, data, 0, self.role_key, True)

    # ------------------------------------------------------------------- steps
    def _done(self, client_id: str) -> TxReceipt | None:
        """The receipt of a step the journal already confirmed; None when it was never sent;
        OnchainUnresolved / OnchainRefused for a step in any other state."""
        if self.journal is None:
            return None
        row = self.journal.get(client_id)
        if row is None:
            return None
        state = str(row.state)
        if state == "confirmed":
            try:
                return self.w3.eth.get_transaction_receipt(HexBytes(row.tx_hash))
            except TransactionNotFound:  # its block left the chain, not yet re-checked
                raise OnchainUnresolved(f"step {client_id} is journaled confirmed but the chain has no "
                                        "receipt (a reorg?): reconcile before acting again") from None
        if state in ("pending", "broadcast", "reorged"):
            raise OnchainUnresolved(f"step {client_id} is {state}: reconcile before acting again")
        raise OnchainRefused(f"step {client_id} {state} earlier ({row.reason}): a new intent is needed")

    def _step(self, intent_id: str, step: str, to: str, data: bytes) -> TxReceipt:
        self.check(to, data)
        fn = self._exec(to, data)
        return self.sender.call(fn, meta={"intent_id": intent_id, "client_id": f"{intent_id}:{step}"})

    # -------------------------------------------------------------------- exit
    def exit_lp(self, intent_id: str, token_id: int, liquidity: int | None = None) -> ExitResult:
        """Remove ``liquidity`` (default: all) of the Safe's position ``token_id`` and collect
        everything it is owed to the Safe."""
        hashes: list[bytes] = []
        dec_cid, col_cid = f"{intent_id}:decrease", f"{intent_id}:collect"
        receipt = self._done(dec_cid)
        min0 = min1 = 0
        if receipt is None:
            owner = self.npm.functions.ownerOf(token_id).call()
            if not _same(owner, self.safe):
                raise OnchainRefused(f"position {token_id} is held by {owner}, not the Safe {self.safe}")
            held = int(self.npm.functions.positions(token_id).call()[7])
            liquidity = held if liquidity is None else liquidity
            if liquidity <= 0 or liquidity > held:
                raise OnchainRefused(f"position {token_id}: liquidity {liquidity} outside (0, {held}]")
            deadline = self._deadline()
            # what the same decrease gives at the current pool state (the NPM lets the Safe,
            # the position's owner, call it)
            a0, a1 = self.npm.functions.decreaseLiquidity(
                (token_id, liquidity, 0, 0, deadline)).call({"from": self.safe})
            if a0 == 0 and a1 == 0:
                raise OnchainRefused(f"position {token_id}: removing {liquidity} liquidity yields nothing")
            min0, min1 = min_after_slippage(a0, self.slippage_bps), min_after_slippage(a1, self.slippage_bps)
            data = _enc(self.npm.functions.decreaseLiquidity((token_id, liquidity, min0, min1, deadline)))
            receipt = self._step(intent_id, "decrease", self.npm.address, data)
        else:
            min0, min1 = (int(x) for x in self._sent_params(dec_cid, self.npm)[2:4])
        decreased = _events(self.npm.events.DecreaseLiquidity(), receipt)
        hashes.append(bytes(receipt["transactionHash"]))
        receipt2 = self._done(col_cid)
        if receipt2 is None:
            data = _enc(self.npm.functions.collect((token_id, self.safe, MAX_UINT128, MAX_UINT128)))
            receipt2 = self._step(intent_id, "collect", self.npm.address, data)
        collected = _events(self.npm.events.Collect(), receipt2)
        hashes.append(bytes(receipt2["transactionHash"]))
        (d,), (c,) = decreased, collected
        if not _same(c["args"]["recipient"], self.safe):
            raise OnchainRefused(f"collect of {token_id} went to {c['args']['recipient']}")  # cannot: Roles
        return ExitResult(intent_id, token_id, int(d["args"]["liquidity"]), min0, min1,
                          int(d["args"]["amount0"]), int(d["args"]["amount1"]),
                          int(c["args"]["amount0"]), int(c["args"]["amount1"]), tuple(hashes))

    # -------------------------------------------------------------------- swap
    def check_swap_intent(self, token_in: str, token_out: str, fee: int, amount_in: int,
                          recipient: str | None = None) -> None:
        """The intent against the policy's scope, before anything else is read or built."""
        if recipient is not None and not _same(recipient, self.safe):
            raise OnchainRefused(f"swap recipient {recipient} is not the Safe {self.safe}")
        if not any(_same(a, token_in) and _same(b, token_out) and f == fee for a, b, f in self.bounds.routes):
            raise OnchainRefused(f"route {token_in} -> {token_out} fee {fee} is not listed in the scope")
        cap = self.bounds.swap_allowance(token_in)
        if amount_in <= 0:
            raise OnchainRefused(f"swap amountIn {amount_in} must be positive")
        if cap is None or amount_in > cap.amount:
            raise OnchainRefused(f"swap amountIn {amount_in} of {token_in} is over the scope's allowance "
                                 f"{0 if cap is None else cap.amount} per {0 if cap is None else cap.period_s}s")

    def swap(self, intent_id: str, token_in: str, token_out: str, fee: int, amount_in: int,
             recipient: str | None = None) -> SwapResult:
        """Sell exactly ``amount_in`` of ``token_in`` for ``token_out`` into the Safe."""
        token_in, token_out = to_checksum_address(token_in), to_checksum_address(token_out)
        hashes: list[bytes] = []
        swap_cid = f"{intent_id}:swap"
        receipt = self._done(swap_cid)
        floor: int | None = None
        quote: int | None = None
        if receipt is None:
            self.check_swap_intent(token_in, token_out, fee, amount_in, recipient)
            ok, floor, why = self.condition.functions.swapFloor(
                token_in, token_out, amount_in, self.bounds.max_slippage_bps).call()
            if not ok or floor <= 0:
                raise OnchainRefused(f"no oracle floor for {amount_in} {token_in} -> {token_out}: "
                                     f"{bytes(why).rstrip(bytes(1)).decode(errors='replace') or 'floor 0'}")
            erc_in = self._erc20(token_in)
            if int(erc_in.functions.allowance(self.safe, self.router.address).call()) < amount_in:
                approved = self._done(f"{intent_id}:approve")
                if approved is None:
                    data = _enc(erc_in.functions.approve(self.router.address, amount_in))
                    approved = self._step(intent_id, "approve", token_in, data)
                hashes.append(bytes(approved["transactionHash"]))
            deadline = self._deadline()
            quote = int(self.router.functions.exactInputSingle(
                (token_in, token_out, fee, self.safe, deadline, amount_in, 0, 0)).call({"from": self.safe}))
            if quote < floor:
                raise OnchainRefused(f"the pool gives {quote} {token_out} for {amount_in} {token_in}, under the "
                                     f"oracle floor {floor}: the pool is off the oracle")
            min_out = max(floor, min_after_slippage(quote, self.slippage_bps))
            data = _enc(self.router.functions.exactInputSingle(
                (token_in, token_out, fee, self.safe, deadline, amount_in, min_out, 0)))
            receipt = self._step(intent_id, "swap", self.router.address, data)
        else:
            min_out = int(self._sent_params(swap_cid, self.router)[6])
            approved = self._done(f"{intent_id}:approve")
            if approved is not None:
                hashes.append(bytes(approved["transactionHash"]))
        hashes.append(bytes(receipt["transactionHash"]))
        out = sum(int(e["args"]["value"]) for e in _events(self._erc20(token_out).events.Transfer(), receipt)
                  if _same(e["args"]["to"], self.safe))
        return SwapResult(intent_id, token_in, token_out, fee, amount_in, min_out, floor, quote, out, tuple(hashes))

    def _sent_params(self, client_id: str, contract: Contract) -> Sequence[Any]:
        """The params tuple of a step already sent, decoded from its own transaction (the
        execTransactionWithRole calldata, then the inner call)."""
        assert self.journal is not None
        row = self.journal.get(client_id)
        tx = self.w3.eth.get_transaction(HexBytes(row.tx_hash))
        _, outer = self.roles.decode_function_input(tx["input"])
        _, inner = contract.decode_function_input(outer["data"])
        params = inner["params"]
        return tuple(params.values()) if isinstance(params, Mapping) else tuple(params)

    # --------------------------------------------------------------- reconcile
    def reconcile(self) -> list[Any]:
        """Re-check confirmed steps against reorgs, then resolve every unresolved step (by
        receipt, then nonce; the same signed bytes rebroadcast where the nonce is free).
        The reorged rows found (each must be reported)."""
        if self.journal is None:
            return []
        reorged = list(self.journal.recheck(self.w3))
        self.journal.recover(self.sender)
        return reorged

    def outcome(self, intent_id: str, kind: str) -> str:
        """The journal's word on an exit or swap intent: "done" only when every step is
        confirmed (an exit: decrease and collect; a swap: its swap step, the approval being
        optional), else "none", "unresolved", "failed" or "partial"."""
        if self.journal is None:
            raise OnchainRefused("no journal: outcomes are not kept")
        if kind == "exit":
            return self.journal.intent_outcome(intent_id, (f"{intent_id}:decrease", f"{intent_id}:collect"))
        if kind != "swap":
            raise OnchainRefused(f"unknown on-chain intent kind {kind!r} (exit, swap)")
        found = self.journal.intent_outcome(intent_id)
        return "partial" if found == "done" and self.journal.get(f"{intent_id}:swap") is None else found


def _events(event: Any, receipt: TxReceipt) -> list[Any]:
    """The receipt's logs of ``event`` emitted by the event's own contract (other contracts'
    logs with the same signature, e.g. another token's Transfer, are not ours)."""
    return [e for e in event.process_receipt(receipt, errors=DISCARD) if _same(e["address"], event.address)]


def _enc(fn: Any) -> bytes:
    return bytes(HexBytes(fn._encode_transaction_data()))
