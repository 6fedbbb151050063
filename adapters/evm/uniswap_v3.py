"""Read Uniswap v3 positions of an owner from any v3-compatible NonfungiblePositionManager.

Everything goes through Multicall3 with chunks batched into one HTTP request, so the
number of round trips is fixed (cold: 5, warm: 1) whatever the number of positions;
all chunks of a read see the same block.
What never changes for a token id (tokens, fee, ticks), a pool's address and a token's
decimals are cached; the owner's id list is re-read every ``ids_refresh_every`` reads
or on demand (a Transfer changes it).

Return data is decoded word by word rather than with full ABI decoding: forks extend
slot0 (e.g. a wider feeProtocol), and the hot path reads thousands of words.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from eth_utils import function_signature_to_4byte_selector, to_checksum_address

from adapters.evm.multicall import Call, Result, aggregate3, aggregate3_at_block
from adapters.evm.rpc import JsonRpc
from policies.errors import InvalidInput, Transient
from policies.types import PoolState, Position, TickFeeGrowth, Token


def _sel(signature: str) -> bytes:
    return function_signature_to_4byte_selector(signature)


BALANCE_OF = _sel("balanceOf(address)")
OWNER_OF = _sel("ownerOf(uint256)")
TOKEN_OF_OWNER_BY_INDEX = _sel("tokenOfOwnerByIndex(address,uint256)")
POSITIONS = _sel("positions(uint256)")
FACTORY = _sel("factory()")
GET_POOL = _sel("getPool(address,address,uint24)")
SLOT0 = _sel("slot0()")
LIQUIDITY = _sel("liquidity()")
FEE_GROWTH_GLOBAL0 = _sel("feeGrowthGlobal0X128()")
FEE_GROWTH_GLOBAL1 = _sel("feeGrowthGlobal1X128()")
TICK_SPACING = _sel("tickSpacing()")
TICKS = _sel("ticks(int24)")
DECIMALS = _sel("decimals()")
SYMBOL = _sel("symbol()")


class ReadError(InvalidInput):
    """The contract did not answer like a v3 position manager, pool or token: the configured
    address is wrong."""


class PositionsChanging(Transient):
    """The owner's positions changed under every re-read: try again next tick."""


class PositionSource(Protocol):
    """Anything that can list an owner's LP positions with their pool state."""

    async def read(self, owner: str, *, refresh_ids: bool = False) -> list[Position]: ...


def _word(data: bytes, i: int) -> int:
    return int.from_bytes(data[32 * i : 32 * i + 32], "big")


def _sword(data: bytes, i: int) -> int:
    """A signed word as the ABI encodes intN (sign-extended to 256 bits)."""
    v = _word(data, i)
    return v - (1 << 256) if v >> 255 else v


def _u256(x: int) -> bytes:
    return x.to_bytes(32, "big")


def _addr_arg(address: str) -> bytes:
    return int(address, 16).to_bytes(32, "big")


def _addr(data: bytes, i: int) -> str:
    return to_checksum_address(data[32 * i + 12 : 32 * i + 32])


def _decode_symbol(data: bytes) -> str:
    if len(data) == 32:  # bytes32 symbols (old tokens)
        return data.rstrip(b"\0").decode("utf-8", "replace")
    if len(data) >= 64:
        length = _word(data, 1)
        return data[64 : 64 + length].decode("utf-8", "replace")
    return "?"


@dataclass(frozen=True, slots=True)
class _Static:
    token0: str
    token1: str
    fee: int
    tick_lower: int
    tick_upper: int


@dataclass
class UniswapV3Reader:
    rpc: JsonRpc
    position_manager: str
    multicall: str
    chunk_size: int = 500
    ids_refresh_every: int = 100
    _ids: dict[str, list[int]] = field(default_factory=dict)
    _reads: dict[str, int] = field(default_factory=dict)
    _static: dict[int, _Static] = field(default_factory=dict)
    _factory: str | None = None
    _pools: dict[tuple[str, str, int], str] = field(default_factory=dict)
    _spacing: dict[str, int] = field(default_factory=dict)
    _tokens: dict[str, Token] = field(default_factory=dict)
    last_block: int = 0  # the block the last read saw
    last_block_hash: str = ""  # and its hash

    def __post_init__(self) -> None:
        self.position_manager = to_checksum_address(self.position_manager)
        self.multicall = to_checksum_address(self.multicall)

    async def _call(self, calls: list[Call]) -> list[Result]:
        return await aggregate3(self.rpc, self.multicall, calls, chunk_size=self.chunk_size)

    # ------------------------------------------------------------ id list
    async def token_ids(self, owner: str) -> list[int]:
        """Two round trips: balanceOf (+ factory), then every tokenOfOwnerByIndex."""
        owner = to_checksum_address(owner)
        npm = self.position_manager
        first = await self._call(
            [Call(npm, BALANCE_OF + _addr_arg(owner)), Call(npm, FACTORY)]
        )
        if not first[0].success or len(first[0].data) < 32:
            raise ReadError(
                f"{npm} does not answer balanceOf(address): not a NonfungiblePositionManager"
            )
        if not first[1].success or len(first[1].data) < 32:
            raise ReadError(f"{npm} does not answer factory(): not a v3 position manager")
        self._factory = _addr(first[1].data, 0)
        count = _word(first[0].data, 0)
        calls = [Call(npm, TOKEN_OF_OWNER_BY_INDEX + _addr_arg(owner) + _u256(i)) for i in range(count)]
        results = await self._call(calls)
        ids = []
        for r in results:
            if not r.success:
                raise ReadError(f"{npm}: tokenOfOwnerByIndex reverted (not enumerable?)")
            ids.append(_word(r.data, 0))
        self._ids[owner] = ids
        self._reads[owner] = 0
        return ids

    # ------------------------------------------------------- static data
    async def _learn(self, raw_positions: dict[int, bytes]) -> None:
        """Cache tokens, fee and ticks of new ids; then token metadata and pool addresses."""
        for token_id, data in raw_positions.items():
            if token_id not in self._static:
                self._static[token_id] = _Static(
                    _addr(data, 2), _addr(data, 3), _word(data, 4),
                    _sword(data, 5), _sword(data, 6),
                )
        keys = {(s.token0, s.token1, s.fee) for s in self._static.values()} - self._pools.keys()
        tokens = {t for k in keys for t in k[:2]} - self._tokens.keys()
        if not keys and not tokens:
            return
        if self._factory is None:
            answer = await self._call([Call(self.position_manager, FACTORY)])
            self._factory = _addr(answer[0].data, 0)
        key_list, token_list = sorted(keys), sorted(tokens)
        calls = [
            Call(self._factory, GET_POOL + _addr_arg(t0) + _addr_arg(t1) + _u256(fee))
            for t0, t1, fee in key_list
        ]
        for t in token_list:
            calls += [Call(t, DECIMALS), Call(t, SYMBOL)]
        results = await self._call(calls)
        for key, r in zip(key_list, results[: len(key_list)], strict=True):
            if not r.success:
                raise ReadError(f"factory {self._factory}: getPool{key} reverted")
            self._pools[key] = _addr(r.data, 0)
        rest = results[len(key_list) :]
        for i, t in enumerate(token_list):
            dec, sym = rest[2 * i], rest[2 * i + 1]
            if not dec.success:
                raise ReadError(f"token {t}: decimals() reverted")
            self._tokens[t] = Token(t, _decode_symbol(sym.data) if sym.success else "?", _word(dec.data, 0))

    # --------------------------------------------------------------- read
    async def read(self, owner: str, *, refresh_ids: bool = False) -> list[Position]:
        """Every position of `owner` with its pool state and both ticks' fee growth.

        Warm reads check balanceOf(owner) and ownerOf(id) in the same round trip; a
        position transferred in, out or burned since the id list was read triggers a
        refresh of the list at once, so the watched set is never stale.
        """
        owner = to_checksum_address(owner)
        ids = self._ids.get(owner)
        if ids is None or refresh_ids or self._reads.get(owner, 0) >= self.ids_refresh_every:
            ids = await self.token_ids(owner)
        self._reads[owner] = self._reads.get(owner, 0) + 1
        for _attempt in range(3):
            if not ids:
                return []
            await self._learn_ids(ids)
            positions = await self._read_dynamic(owner, ids)
            if positions is not None:
                return positions
            ids = await self.token_ids(owner)  # the owner's set changed: read it again
        raise PositionsChanging(f"positions of {owner} keep changing while being read")

    async def _learn_ids(self, ids: list[int]) -> None:
        unknown = [i for i in ids if i not in self._static]
        if not unknown:
            return
        results = await self._call([Call(self.position_manager, POSITIONS + _u256(i)) for i in unknown])
        raw = {}
        for i, r in zip(unknown, results, strict=True):
            if not r.success:
                raise ReadError(f"{self.position_manager}: positions({i}) reverted")
            raw[i] = r.data
        await self._learn(raw)

    async def _read_dynamic(self, owner: str, ids: list[int]) -> list[Position] | None:
        """One round trip: positions, ownership, pool state and tick fee growth, all at once.

        None when the owner's set of positions is no longer `ids`."""
        npm = self.position_manager
        pools = sorted({self._pool_of(i) for i in ids})
        ticks = sorted({(self._pool_of(i), t) for i in ids for t in (self._static[i].tick_lower, self._static[i].tick_upper)})
        need_spacing = [p for p in pools if p not in self._spacing]
        calls = [Call(npm, BALANCE_OF + _addr_arg(owner))]
        calls += [Call(npm, OWNER_OF + _u256(i)) for i in ids]
        calls += [Call(npm, POSITIONS + _u256(i)) for i in ids]
        for p in pools:
            calls += [Call(p, SLOT0), Call(p, LIQUIDITY), Call(p, FEE_GROWTH_GLOBAL0), Call(p, FEE_GROWTH_GLOBAL1)]
        calls += [Call(p, TICKS + (t % (1 << 256)).to_bytes(32, "big")) for p, t in ticks]  # int24 arg
        calls += [Call(p, TICK_SPACING) for p in need_spacing]
        self.last_block, self.last_block_hash, results = await aggregate3_at_block(
            self.rpc, self.multicall, calls, chunk_size=self.chunk_size
        )

        n = len(ids)
        balance, owners, results = results[0], results[1 : 1 + n], results[1 + n :]
        if not balance.success or _word(balance.data, 0) != n:
            return None
        owner_word = _addr_arg(owner)  # compare raw words: checksumming 1,000 addresses is slow
        if any(not r.success or r.data[:32] != owner_word for r in owners):
            return None
        pos_raw = results[:n]
        pool_raw = results[n : n + 4 * len(pools)]
        tick_raw = results[n + 4 * len(pools) : n + 4 * len(pools) + len(ticks)]
        spacing_raw = results[n + 4 * len(pools) + len(ticks) :]
        for p, r in zip(need_spacing, spacing_raw, strict=True):
            self._spacing[p] = _sword(r.data, 0) if r.success else 0

        states: dict[str, PoolState] = {}
        for k, p in enumerate(pools):
            slot0, liq, g0, g1 = pool_raw[4 * k : 4 * k + 4]
            if not (slot0.success and liq.success and g0.success and g1.success):
                raise ReadError(f"pool {p} does not answer slot0/liquidity/feeGrowthGlobal")
            any_id = next(i for i in ids if self._pool_of(i) == p)
            s = self._static[any_id]
            states[p] = PoolState(
                address=p,
                token0=self._tokens[s.token0],
                token1=self._tokens[s.token1],
                fee=s.fee,
                tick_spacing=self._spacing[p],
                sqrt_price_x96=_word(slot0.data, 0),
                tick=_sword(slot0.data, 1),
                liquidity=_word(liq.data, 0),
                fee_growth_global0_x128=_word(g0.data, 0),
                fee_growth_global1_x128=_word(g1.data, 0),
            )
        growth: dict[tuple[str, int], TickFeeGrowth] = {}
        for key, r in zip(ticks, tick_raw, strict=True):
            if not r.success:
                raise ReadError(f"pool {key[0]}: ticks({key[1]}) reverted")
            growth[key] = TickFeeGrowth(_word(r.data, 2), _word(r.data, 3))

        out = []
        for i, r in zip(ids, pos_raw, strict=True):
            if not r.success:
                raise ReadError(f"{npm}: positions({i}) reverted")
            d, s = r.data, self._static[i]
            pool = self._pool_of(i)
            out.append(
                Position(
                    token_id=i,
                    owner=owner,
                    position_manager=npm,
                    pool=states[pool],
                    tick_lower=s.tick_lower,
                    tick_upper=s.tick_upper,
                    liquidity=_word(d, 7),
                    fee_growth_inside0_last_x128=_word(d, 8),
                    fee_growth_inside1_last_x128=_word(d, 9),
                    tokens_owed0=_word(d, 10),
                    tokens_owed1=_word(d, 11),
                    lower=growth[(pool, s.tick_lower)],
                    upper=growth[(pool, s.tick_upper)],
                )
            )
        return out

    def _pool_of(self, token_id: int) -> str:
        s = self._static[token_id]
        return self._pools[(s.token0, s.token1, s.fee)]
