"""A loopback Safe Transaction Service speaking the public API's wire format for the
endpoints lphedge uses (docs: safe-transaction-service, api/v1 + api/v2):

- POST /api/v2/delegates/                              add a delegate (owner-signed EIP-712)
- GET  /api/v2/delegates/?safe=                         list delegates
- POST /api/v2/safes/{safe}/multisig-transactions/      propose (owner or delegate)
- GET  /api/v2/safes/{safe}/multisig-transactions/      list (executed, nonce__gte, ordering, safe_tx_hash)
- GET  /api/v2/multisig-transactions/{safeTxHash}/      one transaction
- POST /api/v1/multisig-transactions/{safeTxHash}/confirmations/   add an owner's signature

Like the real service it recomputes the SafeTx hash, checks the proposer's signature and
reads the owners from the chain. ``tamper`` lets a test forge an answer afterwards.
"""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils.address import to_checksum_address
from hexbytes import HexBytes
from web3 import Web3

SAFE_ABI = [
    {"name": "getOwners", "type": "function", "stateMutability": "view", "inputs": [],
     "outputs": [{"name": "", "type": "address[]"}]},
    {"name": "getThreshold", "type": "function", "stateMutability": "view", "inputs": [],
     "outputs": [{"name": "", "type": "uint256"}]},
]


def _safe_tx_hash(chain_id: int, safe: str, d: dict[str, Any]) -> bytes:
    typed = {
        "types": {
            "EIP712Domain": [{"name": "chainId", "type": "uint256"}, {"name": "verifyingContract", "type": "address"}],
            "SafeTx": [
                {"name": "to", "type": "address"}, {"name": "value", "type": "uint256"},
                {"name": "data", "type": "bytes"}, {"name": "operation", "type": "uint8"},
                {"name": "safeTxGas", "type": "uint256"}, {"name": "baseGas", "type": "uint256"},
                {"name": "gasPrice", "type": "uint256"}, {"name": "gasToken", "type": "address"},
                {"name": "refundReceiver", "type": "address"}, {"name": "nonce", "type": "uint256"},
            ],
        },
        "primaryType": "SafeTx",
        "domain": {"chainId": chain_id, "verifyingContract": safe},
        "message": {
            "to": d["to"], "value": int(d["value"]), "data": d.get("data") or "0x",
            "operation": int(d["operation"]), "safeTxGas": int(d["safeTxGas"]),
            "baseGas": int(d["baseGas"]), "gasPrice": int(d["gasPrice"]),
            "gasToken": d["gasToken"], "refundReceiver": d["refundReceiver"], "nonce": int(d["nonce"]),
        },
    }
    m = encode_typed_data(full_message=typed)
    return bytes(Web3.keccak(b"\x19" + m.version + m.header + m.body))


def _recover(digest: bytes, sig: bytes) -> str:
    return to_checksum_address(Account._recover_hash(digest, signature=sig))


class TxServiceServer:
    def __init__(self, rpc_url: str, chain_id: int) -> None:
        self.w3 = Web3(Web3.HTTPProvider(rpc_url))
        self.chain_id = chain_id
        self.txs: dict[str, dict[str, Any]] = {}
        self.delegates: list[dict[str, Any]] = []
        self.requests: list[tuple[str, str]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def owners(self, safe: str) -> list[str]:
        c = self.w3.eth.contract(address=to_checksum_address(safe), abi=SAFE_ABI)
        return [to_checksum_address(o) for o in c.functions.getOwners().call()]

    @staticmethod
    def _checksum_error(address: str) -> web.Response | None:
        """The real service answers 422 (code 1) to a Safe address that is not checksummed."""
        if Web3.is_checksum_address(address):
            return None
        return web.json_response(
            {"code": 1, "message": "Checksum address validation failed", "arguments": [address]}, status=422
        )

    # -- handlers ----------------------------------------------------------------------------
    async def add_delegate(self, request: web.Request) -> web.Response:
        body = await request.json()
        delegate, delegator = to_checksum_address(body["delegate"]), to_checksum_address(body["delegator"])
        safe = to_checksum_address(body["safe"]) if body.get("safe") else None
        totp = int(time.time()) // 3600
        ok = False
        for t in (totp, totp - 1):
            typed = {
                "types": {
                    "EIP712Domain": [{"name": "name", "type": "string"}, {"name": "version", "type": "string"},
                                     {"name": "chainId", "type": "uint256"}],
                    "Delegate": [{"name": "delegateAddress", "type": "address"}, {"name": "totp", "type": "uint256"}],
                },
                "primaryType": "Delegate",
                "domain": {"name": "Safe Transaction Service", "version": "1.0", "chainId": self.chain_id},
                "message": {"delegateAddress": delegate, "totp": t},
            }
            m = encode_typed_data(full_message=typed)
            digest = bytes(Web3.keccak(b"\x19" + m.version + m.header + m.body))
            if _recover(digest, bytes(HexBytes(body["signature"]))) == delegator:
                ok = True
        if not ok:
            return web.json_response({"signature": ["Signature does not match delegator"]}, status=400)
        if safe and delegator not in self.owners(safe):
            return web.json_response({"delegator": [f"{delegator} is not an owner of {safe}"]}, status=400)
        self.delegates.append({"safe": safe, "delegate": delegate, "delegator": delegator,
                               "label": body.get("label", ""), "expiryDate": None})
        return web.json_response(self.delegates[-1], status=201)

    async def list_delegates(self, request: web.Request) -> web.Response:
        safe = request.query.get("safe")
        rows = [d for d in self.delegates if not safe or d["safe"] == to_checksum_address(safe)]
        return web.json_response({"count": len(rows), "next": None, "previous": None, "results": rows})

    async def propose(self, request: web.Request) -> web.Response:
        if (bad := self._checksum_error(request.match_info["address"])) is not None:
            return bad
        safe = request.match_info["address"]
        body = await request.json()
        try:
            h = _safe_tx_hash(self.chain_id, safe, body)
        except (KeyError, ValueError, TypeError) as exc:
            return web.json_response({"nonFieldErrors": [f"invalid transaction: {exc}"]}, status=422)
        if bytes(HexBytes(body["contractTransactionHash"])) != h:
            return web.json_response(
                {"nonFieldErrors": [f"Contract-transaction-hash={body['contractTransactionHash']} "
                                    f"does not match provided contract-tx-hash=0x{h.hex()}"]}, status=422)
        sender = to_checksum_address(body["sender"])
        owners = self.owners(safe)
        delegates = {d["delegate"] for d in self.delegates if d["safe"] in (None, safe)}
        if sender not in owners and sender not in delegates:
            return web.json_response({"nonFieldErrors": [f"User={sender} is not an owner or delegate"]}, status=422)
        sig = bytes(HexBytes(body.get("signature") or b""))
        if not sig or _recover(h, sig[:65]) != sender:
            return web.json_response({"nonFieldErrors": ["Signature does not match sender"]}, status=422)
        now = datetime.now(UTC).isoformat()
        key = "0x" + h.hex()
        self.txs[key] = {
            "safe": safe, "to": to_checksum_address(body["to"]), "value": str(int(body["value"])),
            "data": body.get("data"), "operation": int(body["operation"]),
            "gasToken": to_checksum_address(body["gasToken"]), "safeTxGas": str(int(body["safeTxGas"])),
            "baseGas": str(int(body["baseGas"])), "gasPrice": str(int(body["gasPrice"])),
            "refundReceiver": to_checksum_address(body["refundReceiver"]), "nonce": str(int(body["nonce"])),
            "executionDate": None, "submissionDate": now, "modified": now, "blockNumber": None,
            "transactionHash": None, "safeTxHash": key, "proposer": sender,
            "proposedByDelegate": sender if sender not in owners else None,
            "executor": None, "isExecuted": False, "isSuccessful": None, "ethGasPrice": None,
            "maxFeePerGas": None, "maxPriorityFeePerGas": None, "gasUsed": None, "fee": None,
            "origin": body.get("origin"), "dataDecoded": None, "confirmationsRequired": 2,
            "confirmations": [], "trusted": True, "signatures": None,
        }
        if sender in owners:
            self.txs[key]["confirmations"].append(self._confirmation(sender, sig[:65]))
        return web.Response(status=201)

    def _confirmation(self, owner: str, sig: bytes) -> dict[str, Any]:
        return {"owner": owner, "submissionDate": datetime.now(UTC).isoformat(), "transactionHash": None,
                "signature": "0x" + sig.hex(), "signatureType": "EOA"}

    async def confirm(self, request: web.Request) -> web.Response:
        key = request.match_info["safe_tx_hash"].lower()
        tx = self.txs.get(key)
        if tx is None:
            return web.json_response({"detail": "Not found."}, status=404)
        sig = bytes(HexBytes((await request.json())["signature"]))
        owner = _recover(bytes(HexBytes(key)), sig)
        if owner not in self.owners(tx["safe"]):
            return web.json_response({"signature": [f"Signer={owner} is not an owner"]}, status=400)
        if all(c["owner"] != owner for c in tx["confirmations"]):
            tx["confirmations"].append(self._confirmation(owner, sig))
        return web.json_response({"signature": "0x" + sig.hex()}, status=201)

    async def get_tx(self, request: web.Request) -> web.Response:
        tx = self.txs.get(request.match_info["safe_tx_hash"].lower())
        if tx is None:
            return web.json_response({"detail": "Not found."}, status=404)
        return web.json_response(tx)

    async def list_txs(self, request: web.Request) -> web.Response:
        if (bad := self._checksum_error(request.match_info["address"])) is not None:
            return bad
        safe = request.match_info["address"]
        q = request.query
        rows = [t for t in self.txs.values() if t["safe"] == safe]
        if "executed" in q:
            want = q["executed"].lower() == "true"
            rows = [t for t in rows if t["isExecuted"] == want]
        if "nonce__gte" in q:
            rows = [t for t in rows if int(t["nonce"]) >= int(q["nonce__gte"])]
        if "safe_tx_hash" in q:
            rows = [t for t in rows if t["safeTxHash"] == q["safe_tx_hash"].lower()]
        order = q.get("ordering", "-nonce")
        rows.sort(key=lambda t: int(t["nonce"]), reverse=order.startswith("-"))
        unique = len({t["nonce"] for t in self.txs.values() if t["safe"] == safe})
        return web.json_response(
            {"count": len(rows), "next": None, "previous": None, "results": rows, "countUniqueNonce": unique}
        )

    # -- lifecycle --------------------------------------------------------------------------
    def tamper(self, safe_tx_hash: bytes, **fields: Any) -> None:
        """Forge the stored answer (keeping its safeTxHash), as a compromised service would."""
        self.txs["0x" + safe_tx_hash.hex()].update(fields)

    def start(self) -> TxServiceServer:
        ready = threading.Event()

        async def _serve() -> None:
            app = web.Application()

            @web.middleware
            async def log(request: web.Request, handler: Any) -> web.StreamResponse:
                self.requests.append((request.method, request.path))
                resp: web.StreamResponse = await handler(request)
                return resp

            app.middlewares.append(log)
            app.router.add_post("/api/v2/delegates/", self.add_delegate)
            app.router.add_get("/api/v2/delegates/", self.list_delegates)
            app.router.add_post("/api/v2/safes/{address}/multisig-transactions/", self.propose)
            app.router.add_get("/api/v2/safes/{address}/multisig-transactions/", self.list_txs)
            app.router.add_get("/api/v2/multisig-transactions/{safe_tx_hash}/", self.get_tx)
            app.router.add_post("/api/v1/multisig-transactions/{safe_tx_hash}/confirmations/", self.confirm)
            self._runner = web.AppRunner(app)
            await self._runner.setup()
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            await site.start()
            self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            ready.set()

        def _run() -> None:
            self._loop = asyncio.new_event_loop()
            self._loop.run_until_complete(_serve())
            self._loop.run_forever()

        self._thread = threading.Thread(target=_run, daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("tx service did not start")
        return self

    def stop(self) -> None:
        if self._loop is None:
            return
        loop = self._loop
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(5)
        self._loop = None
