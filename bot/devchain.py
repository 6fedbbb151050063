"""A local chain with real contracts: the test harness, the demo and the dry-run base.

anvil (npm @foundry-rs/anvil) + Multicall3 and a Safe 1.4.1 with its proxy factory,
fallback handler and MultiSend (bytecode shipped in safe-eth-py) + Uniswap v3 factory,
NonfungiblePositionManager and SwapRouter (bytecode from the npm artifacts) + ERC20 test
tokens, with LP positions owned by the Safe in pools of fee tiers 500/3000/10000 and
token decimals 6/8/18. Prices move only through real swaps.

This module is for local chains only: it uses anvil's unlocked, well-known accounts.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from fractions import Fraction
from functools import cache
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.contract import Contract
from web3.logs import DISCARD

from adapters.anvil import ANVIL_KEYS, PROJECT_ROOT, Anvil
from adapters.evm.multicall import MULTICALL3_ADDRESS
from adapters.evm.tx import TxSender
from policies.types import Token

NODE_MODULES = PROJECT_ROOT / "node_modules"
UNISWAP_ARTIFACTS = {
    "UniswapV3Factory": "@uniswap/v3-core/artifacts/contracts/UniswapV3Factory.sol/UniswapV3Factory.json",
    "UniswapV3Pool": "@uniswap/v3-core/artifacts/contracts/UniswapV3Pool.sol/UniswapV3Pool.json",
    "NonfungiblePositionManager": "@uniswap/v3-periphery/artifacts/contracts/"
    "NonfungiblePositionManager.sol/NonfungiblePositionManager.json",
    "SwapRouter": "@uniswap/v3-periphery/artifacts/contracts/SwapRouter.sol/SwapRouter.json",
}
TICK_SPACING = {100: 1, 500: 10, 3000: 60, 10000: 200}
MAX_UINT256 = (1 << 256) - 1
MAX_UINT128 = (1 << 128) - 1


@cache
def artifact(name: str) -> dict[str, Any]:
    """ABI and creation bytecode of a contract shipped by npm or safe-eth-py."""
    if name in UNISWAP_ARTIFACTS:
        path = NODE_MODULES / UNISWAP_ARTIFACTS[name]
        if not path.exists():
            raise FileNotFoundError(f"{path} missing: run `make bootstrap` (npm ci)")
        data = json.loads(path.read_text())
        return {"abi": data["abi"], "bytecode": data["bytecode"]}
    import safe_eth.eth.contracts as safe_contracts

    abis = Path(safe_contracts.__file__).parent / "abis"
    if name == "Multicall3":
        from safe_eth.eth.contracts.abis.multicall import multicall_v3_abi, multicall_v3_bytecode

        return {"abi": multicall_v3_abi, "bytecode": "0x" + multicall_v3_bytecode.hex()}
    files = {
        "ERC20": "ERC20TestToken.json",
        "Safe": "Safe_V1_4_1.json",
        "SafeProxyFactory": "ProxyFactory_V1_4_1.json",
        "CompatibilityFallbackHandler": "CompatibilityFallbackHandler_V1_4_1.json",
        "MultiSend": "MultiSend_V1_4_1.json",
        "MultiSendCallOnly": "MultiSendCallOnly_V1_4_1.json",
    }
    data = json.loads((abis / files[name]).read_text())
    return {"abi": data["abi"], "bytecode": data.get("bytecode", "")}


def sqrt_price_x96_for(price: Fraction) -> int:
    """floor(sqrt(price) * 2^96) for an exact raw price (token1 raw per token0 raw)."""
    return math.isqrt(price.numerator * (1 << 192) // price.denominator)


@dataclass
class DevChain:
    anvil: Anvil
    w3: Web3
    deployer: LocalAccount
    owner_keys: list[str]
    bot_key: str
    addresses: dict[str, str] = field(default_factory=dict)
    tokens: dict[str, Token] = field(default_factory=dict)
    pools: dict[str, str] = field(default_factory=dict)
    position_ids: list[int] = field(default_factory=list)
    owners: int = 3
    threshold: int = 2
    _contracts: dict[tuple[str, str], Contract] = field(default_factory=dict, repr=False)
    _pool_tokens: dict[str, tuple[Token, Token, int]] = field(default_factory=dict, repr=False)
    _approved: set[str] = field(default_factory=set, repr=False)
    _senders: dict[str, TxSender] = field(default_factory=dict, repr=False)

    # ----------------------------------------------------------------- start
    @classmethod
    def start(
        cls,
        *,
        code_size_limit: bool = False,
        owners: int = 3,
        threshold: int = 2,
        seed_positions: bool = True,
    ) -> DevChain:
        anvil = Anvil(code_size_limit=code_size_limit).start()
        try:
            w3 = anvil.connection.w3  # the project's one chain access path (adapters/evm/chain.py)
            chain = cls(
                anvil=anvil,
                w3=w3,
                deployer=Account.from_key(ANVIL_KEYS[0]),
                owner_keys=list(ANVIL_KEYS[1 : 1 + owners]),
                bot_key=ANVIL_KEYS[1 + owners],
                owners=owners,
                threshold=threshold,
            )
            chain._deploy_core()
            if seed_positions:
                chain._seed()
            return chain
        except BaseException:
            anvil.stop()
            raise

    @property
    def url(self) -> str:
        return self.anvil.url

    @property
    def chain_id(self) -> int:
        return int(self.w3.eth.chain_id)

    def close(self) -> None:
        self.anvil.stop()

    def __enter__(self) -> DevChain:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----------------------------------------------------------- primitives
    def contract(self, name: str, address: str) -> Contract:
        key = (name, address.lower())
        if key not in self._contracts:  # building a contract object parses its ABI: keep it
            self._contracts[key] = self.w3.eth.contract(
                address=Web3.to_checksum_address(address), abi=artifact(name)["abi"]
            )
        return self._contracts[key]

    def sender(self, address: str | None = None) -> TxSender:
        """The project's transaction sender (adapters/evm/tx.py) for an unlocked anvil account
        (the node signs); one per address, so the chain id is asked once."""
        key = Web3.to_checksum_address(address or self.deployer.address)
        if key not in self._senders:
            self._senders[key] = TxSender(self.w3, key, receipt_timeout=60)
        return self._senders[key]

    def transact(
        self, fn: Any, sender: str | None = None, value: int = 0, gas: int | None = None
    ) -> Any:
        """Send a contract call (or constructor) from an unlocked anvil account through the
        one sender (pending nonce, gas = estimate x1.25 + 50k unless ``gas`` is given, fees
        from the node); the receipt, or TxReverted naming the revert."""
        return self.sender(sender).call(fn, value=value, gas=gas)

    def deploy(self, name: str, *args: Any) -> str:
        art = artifact(name)
        factory = self.w3.eth.contract(abi=art["abi"], bytecode=art["bytecode"])
        receipt = self.transact(factory.constructor(*args))
        return str(receipt["contractAddress"])

    def snapshot(self) -> str:
        return str(self.anvil.rpc("evm_snapshot"))

    def revert(self, snapshot_id: str) -> None:
        if not self.anvil.rpc("evm_revert", [snapshot_id]):
            raise RuntimeError(f"evm_revert({snapshot_id}) failed")

    def fork(self, **kwargs: Any) -> Anvil:
        """A second anvil forking this chain at its current head (caller stops it)."""
        return Anvil(fork_url=self.url, chain_id=self.chain_id, **kwargs).start()

    # ------------------------------------------------------------- deploys
    def _deploy_core(self) -> None:
        from safe_eth.safe import Safe

        a = self.addresses
        # Multicall3 lives at the same address on most chains; put it there so the
        # default works on the local chain and its forks as on mainnet.
        deployed = self.deploy("Multicall3")
        self.anvil.rpc("anvil_setCode", [MULTICALL3_ADDRESS, "0x" + bytes(self.w3.eth.get_code(Web3.to_checksum_address(deployed))).hex()])
        a["multicall3"] = MULTICALL3_ADDRESS
        a["weth"] = self.deploy_token("WETH", 18).address
        a["factory"] = self.deploy("UniswapV3Factory")
        # tokenDescriptor is only used by tokenURI, which lphedge never calls.
        a["position_manager"] = self.deploy(
            "NonfungiblePositionManager", a["factory"], a["weth"], a["multicall3"]
        )
        a["swap_router"] = self.deploy("SwapRouter", a["factory"], a["weth"])
        a["safe_singleton"] = self.deploy("Safe")
        a["proxy_factory"] = self.deploy("SafeProxyFactory")
        a["fallback_handler"] = self.deploy("CompatibilityFallbackHandler")
        a["multisend"] = self.deploy("MultiSend")
        a["multisend_call_only"] = self.deploy("MultiSendCallOnly")
        client = self.anvil.connection.ethereum_client()
        owners = [Account.from_key(k).address for k in self.owner_keys]
        tx = Safe.create(
            client,
            self.deployer,
            a["safe_singleton"],  # type: ignore[arg-type]
            owners,
            self.threshold,
            fallback_handler=a["fallback_handler"],  # type: ignore[arg-type]
            proxy_factory_address=a["proxy_factory"],  # type: ignore[arg-type]
        )
        a["safe"] = str(tx.contract_address)

    def deploy_token(self, symbol: str, decimals: int, supply: int | None = None) -> Token:
        supply = supply if supply is not None else 10**40
        address = self.deploy("ERC20", symbol, symbol, decimals, self.deployer.address, supply)
        token = Token(address=Web3.to_checksum_address(address), symbol=symbol, decimals=decimals)
        self.tokens[symbol] = token
        return token

    def _approve_all(self, token: Token) -> None:
        if token.address in self._approved:  # one unlimited approval per token is enough
            return
        self._approved.add(token.address)
        erc20 = self.contract("ERC20", token.address)
        for spender in ("position_manager", "swap_router"):
            if spender in self.addresses:
                self.transact(erc20.functions.approve(self.addresses[spender], MAX_UINT256))

    # --------------------------------------------------------------- pools
    def create_pool(self, token_a: Token, token_b: Token, fee: int, price: float | Fraction) -> str:
        """Create and initialise a pool at `price` = token_b per token_a in human units."""
        p = Fraction(price)
        if p <= 0:
            raise ValueError("price must be positive")
        t0, t1 = sorted((token_a, token_b), key=lambda t: int(t.address, 16))
        raw = p * Fraction(10**token_b.decimals, 10**token_a.decimals)  # b raw per a raw
        if t0 is not token_a:
            raw = 1 / raw
        npm = self.contract("NonfungiblePositionManager", self.addresses["position_manager"])
        self.transact(
            npm.functions.createAndInitializePoolIfNecessary(
                t0.address, t1.address, fee, sqrt_price_x96_for(raw)
            )
        )
        factory = self.contract("UniswapV3Factory", self.addresses["factory"])
        pool = str(factory.functions.getPool(t0.address, t1.address, fee).call())
        self.pools[f"{token_a.symbol}/{token_b.symbol}/{fee}"] = pool
        for t in (t0, t1):
            self._approve_all(t)
        return pool

    def pool_tokens(self, pool: str) -> tuple[Token, Token, int]:
        if pool in self._pool_tokens:
            return self._pool_tokens[pool]
        c = self.contract("UniswapV3Pool", pool)
        t0, t1 = c.functions.token0().call(), c.functions.token1().call()
        by_addr = {t.address: t for t in self.tokens.values()}
        self._pool_tokens[pool] = (by_addr[t0], by_addr[t1], int(c.functions.fee().call()))
        return self._pool_tokens[pool]

    def slot0(self, pool: str) -> tuple[int, int]:
        s = self.contract("UniswapV3Pool", pool).functions.slot0().call()
        return int(s[0]), int(s[1])

    def mint(
        self,
        pool: str,
        tick_lower: int,
        tick_upper: int,
        amount0: int,
        amount1: int,
        recipient: str | None = None,
    ) -> int:
        """Mint a position through the NonfungiblePositionManager; returns its token id."""
        t0, t1, fee = self.pool_tokens(pool)
        npm = self.contract("NonfungiblePositionManager", self.addresses["position_manager"])
        params = (
            t0.address, t1.address, fee, tick_lower, tick_upper,
            amount0, amount1, 0, 0,
            recipient or self.addresses["safe"], 2**63,
        )
        receipt = self.transact(npm.functions.mint(params))
        events = npm.events.IncreaseLiquidity().process_receipt(receipt, errors=DISCARD)
        return int(events[0]["args"]["tokenId"])

    def mint_many(
        self, pool: str, ranges: list[tuple[int, int, int, int]], recipient: str | None = None
    ) -> int:
        """Mint many positions fast: one JSON-RPC batch of eth_sendTransaction per 200.

        `ranges` holds (tick_lower, tick_upper, amount0, amount1). Returns how many
        succeeded (a range whose amounts give zero liquidity reverts and is skipped).
        """
        t0, t1, fee = self.pool_tokens(pool)
        npm = self.contract("NonfungiblePositionManager", self.addresses["position_manager"])
        to = Web3.to_checksum_address(recipient or self.addresses["safe"])
        sender = self.deployer.address
        txs: list[dict[str, Any]] = []
        nonce = self.w3.eth.get_transaction_count(sender, "pending")
        for lo, hi, a0, a1 in ranges:
            data = npm.encode_abi(
                "mint", [(t0.address, t1.address, fee, lo, hi, a0, a1, 0, 0, to, 2**63)]
            )
            txs.append(
                {"from": sender, "to": npm.address, "data": data, "gas": hex(1_000_000),
                 "nonce": hex(nonce + len(txs))}
            )
        ok = 0
        # Queue everything with automine off, then mine one block: fast and in nonce order.
        # This path stays outside adapters/evm/tx.py on purpose: the sender estimates gas and
        # waits for each receipt, which needs a mined block per transaction (automine on);
        # here thousands of mints go out in JSON-RPC batches of 200 and land in one block,
        # with a fixed gas limit (a mint that would revert is counted as not minted).
        self.anvil.rpc("evm_setAutomine", [False])
        try:
            hashes: list[str] = []
            for i in range(0, len(txs), 200):
                hashes += self.anvil.rpc_batch([("eth_sendTransaction", [tx]) for tx in txs[i : i + 200]])
            self.anvil.rpc("evm_mine")
        finally:
            self.anvil.rpc("evm_setAutomine", [True])
        for i in range(0, len(hashes), 200):
            receipts = self.anvil.rpc_batch([("eth_getTransactionReceipt", [h]) for h in hashes[i : i + 200]])
            ok += sum(1 for r in receipts if r and int(r["status"], 16) == 1)
        return ok

    def swap(self, pool: str, token_in: Token, amount_in: int, sqrt_price_limit_x96: int = 0) -> None:
        t0, t1, fee = self.pool_tokens(pool)
        token_out = t1 if token_in.address == t0.address else t0
        router = self.contract("SwapRouter", self.addresses["swap_router"])
        params = (
            token_in.address, token_out.address, fee, self.deployer.address, 2**63,
            amount_in, 0, sqrt_price_limit_x96,
        )
        self.transact(router.functions.exactInputSingle(params))

    def move_price(self, pool: str, target_tick: int) -> None:
        """Real swaps until the pool's tick reaches `target_tick` (price limit = that tick)."""
        from policies.lp_math import get_sqrt_ratio_at_tick

        t0, t1, _ = self.pool_tokens(pool)
        sqrt_now, _ = self.slot0(pool)
        target = get_sqrt_ratio_at_tick(target_tick)
        if target == sqrt_now:
            return
        zero_for_one = target < sqrt_now  # selling token0 lowers the price
        self.swap(pool, t0 if zero_for_one else t1, 10**38, sqrt_price_limit_x96=target)

    # ---------------------------------------------------------------- seed
    def _seed(self) -> None:
        """Pools over fee tiers 500/3000/10000 and decimals 6/8/18, positions held by the Safe."""
        usdc = self.deploy_token("USDC", 6)
        wbtc = self.deploy_token("WBTC", 8)
        dai = self.deploy_token("DAI", 18)
        weth = self.tokens["WETH"]
        specs = [
            (weth, usdc, 500, 3000.0),
            (wbtc, weth, 3000, 20.0),
            (weth, dai, 10000, 3000.0),
        ]
        for a, b, fee, price in specs:
            pool = self.create_pool(a, b, fee, price)
            _, tick = self.slot0(pool)
            spacing = TICK_SPACING[fee]
            base = tick - tick % spacing
            t0, t1, _ = self.pool_tokens(pool)
            big0, big1 = 10 ** (t0.decimals + 6), 10 ** (t1.decimals + 6)
            # Deep background liquidity from the deployer, so swaps behave like a real pool.
            self.mint(pool, base - 600 * spacing, base + 600 * spacing, big0, big1, self.deployer.address)
            # The Safe's positions: a tight range, a wide one, and one above the price.
            for lo, hi in ((-20, 20), (-200, 150), (10, 60)):
                self.position_ids.append(
                    self.mint(pool, base + lo * spacing, base + hi * spacing, big0 // 1000, big1 // 1000)
                )
        # and one full-range position (1 WETH + 3,000 USDC)
        pool = self.pools["WETH/USDC/500"]
        t0, _, _ = self.pool_tokens(pool)
        amounts = (10**18, 3000 * 10**6) if t0.symbol == "WETH" else (3000 * 10**6, 10**18)
        self.position_ids.append(self.mint(pool, -887270, 887270, *amounts))
