#!/usr/bin/env python3
"""Usage: python gen_tronpy.py COUNT SEED

Builds COUNT random TRX / USDT transfers offline with tronpy 0.6 and prints one
JSON object per line (see README.md). The random draws are made in the same
order as gen_tronweb.js, so the same SEED gives the same transactions.
"""
import hashlib
import json
import sys

from tronpy import Contract, Tron
from tronpy.keys import PrivateKey, Signature, to_base58check_address, to_hex_address
from tronpy.providers import HTTPProvider
from tronpy.proto import tron_pb2
from tronpy.proto.transaction import _raw_data_to_protobuf

USDT = "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t"
T_2026 = 1767225600000  # 2026-01-01T00:00:00Z in ms
T_2027 = 1798761600000
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
TRANSFER_ABI = {
    "type": "function",
    "name": "transfer",
    "stateMutability": "nonpayable",
    "inputs": [{"name": "_to", "type": "address"}, {"name": "_value", "type": "uint256"}],
    "outputs": [{"name": "", "type": "bool"}],
}


class Rng:
    """Deterministic byte stream: sha256("SEED/0") || sha256("SEED/1") || ..."""

    def __init__(self, seed):
        self.seed, self.counter, self.buf = seed, 0, b""

    def bytes(self, n):
        while len(self.buf) < n:
            self.buf += hashlib.sha256(f"{self.seed}/{self.counter}".encode()).digest()
            self.counter += 1
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def between(self, lo, hi):  # uniform-ish integer in [lo, hi]
        return lo + int.from_bytes(self.bytes(32), "big") % (hi - lo + 1)

    def spread(self, lo, hi):  # pick a magnitude first, so short and long varints both show up
        cap = 10 ** self.between(1, len(str(hi)))
        return self.between(lo, min(cap, hi))


def check(what, got, want):
    if got != want:
        raise AssertionError(f"{what}: decoded {got!r}, generated {want!r}")


def check_decoded(rec, raw_bytes):
    """Parse raw_data with tronpy's protobuf module; enforce the strict rules and
    compare every field with what we report."""
    raw = tron_pb2.Transaction.raw.FromString(raw_bytes)
    check("re-serialisation", raw.SerializeToString(), raw_bytes)
    check("contract count", len(raw.contract), 1)
    check("ref_block_num", raw.ref_block_num, 0)
    check("auths", len(raw.auths), 0)
    check("scripts", raw.scripts, b"")
    check("memo", raw.data.hex(), rec["memo"])
    check("fee_limit", raw.fee_limit, rec["fee_limit"])
    check("ref_block_bytes", raw.ref_block_bytes.hex(), rec["ref_block_bytes"])
    check("ref_block_hash", raw.ref_block_hash.hex(), rec["ref_block_hash"])
    check("expiration", raw.expiration, rec["expiration"])
    check("timestamp", raw.timestamp, rec["timestamp"])
    c = raw.contract[0]
    check("Permission_id", c.Permission_id, 0)
    check("provider/ContractName", (c.provider, c.ContractName), (b"", b""))
    owner = bytes.fromhex(to_hex_address(rec["owner"]))
    if rec["kind"] == "trx":
        check("type", c.type, tron_pb2.Transaction.Contract.TransferContract)
        check("type_url", c.parameter.type_url, "type.googleapis.com/protocol.TransferContract")
        v = tron_pb2.TransferContract.FromString(c.parameter.value)
        check("owner", v.owner_address, owner)
        check("to", v.to_address, bytes.fromhex(to_hex_address(rec["to"])))
        check("amount", str(v.amount), rec["amount"])
    else:
        check("type", c.type, tron_pb2.Transaction.Contract.TriggerSmartContract)
        check("type_url", c.parameter.type_url, "type.googleapis.com/protocol.TriggerSmartContract")
        v = tron_pb2.TriggerSmartContract.FromString(c.parameter.value)
        check("owner", v.owner_address, owner)
        check("contract", v.contract_address, bytes.fromhex(to_hex_address(USDT)))
        to20 = bytes.fromhex(to_hex_address(rec["to"]))[1:]
        want = bytes.fromhex("a9059cbb") + bytes(12) + to20 + int(rec["amount"]).to_bytes(32, "big")
        check("data", v.data, want)
        check("call_value/call_token_value/token_id", (v.call_value, v.call_token_value, v.token_id), (0, 0, 0))
    check("txid", hashlib.sha256(raw_bytes).hexdigest(), rec["txid"])
    signer = Signature.fromhex(rec["signature"]).recover_public_key_from_msg_hash(bytes.fromhex(rec["txid"]))
    check("recovered signer", signer.to_base58check_address(), rec["owner"])


def generate(client, usdt, rng):
    kind = "trx" if rng.between(0, 1) == 0 else "trc20"
    key_bytes = rng.bytes(32)
    if not 0 < int.from_bytes(key_bytes, "big") < SECP256K1_N:
        raise AssertionError("drew an invalid private key")
    to = to_base58check_address("41" + rng.bytes(20).hex())
    amount = rng.spread(1, 10**15) if kind == "trx" else rng.spread(1, 10**20)
    memo = b"" if rng.between(0, 2) == 0 else rng.bytes(rng.between(1, 100))
    timestamp = rng.between(T_2026, T_2027 - 1)
    expiration = timestamp + rng.between(1000, 86400000)
    ref_block_bytes = rng.bytes(2)
    ref_block_hash = rng.bytes(8)
    fee_limit = 0 if kind == "trx" else rng.spread(1, 15000 * 10**6)

    priv = PrivateKey(key_bytes)
    owner = priv.public_key.to_base58check_address()
    if kind == "trx":
        builder = client.trx.transfer(owner, to, amount)
    else:
        builder = usdt.functions.transfer.with_owner(owner)(to, amount).fee_limit(fee_limit)
    if memo:
        builder.memo(memo)
    # tronpy only offers "now + delta" for these; set the absolute values directly.
    builder._raw_data["timestamp"] = timestamp
    builder._raw_data["expiration"] = expiration
    # build(offline=True) takes a block id and slices bytes 6..8 / 8..16 out of it.
    block_id = bytes(6) + ref_block_bytes + ref_block_hash + bytes(16)
    txn = builder.build(offline=True, ref_block_id=block_id.hex())

    # tronpy 0.6's offline serialiser (_raw_data_to_protobuf) drops raw_data.data,
    # so its offline txid is wrong for memo transactions. Serialise with the same
    # library function and put the memo into the protobuf message ourselves.
    pb = _raw_data_to_protobuf(txn._raw_data)
    if "data" in txn._raw_data:
        pb.data = bytes.fromhex(txn._raw_data["data"])
    raw_bytes = pb.SerializeToString()
    txid = hashlib.sha256(raw_bytes).hexdigest()
    if not memo:
        check("tronpy offline txid", txn.txid, txid)
    # Transaction.sign() is exactly priv.sign_msg_hash(txid), but it refuses
    # transactions whose expiration is in the past, so call the signer directly.
    signature = priv.sign_msg_hash(bytes.fromhex(txid))

    rec = {
        "source": "tronpy", "kind": kind, "privkey": key_bytes.hex(), "owner": owner, "to": to,
        "token": None if kind == "trx" else USDT, "amount": str(amount),
        "expiration": expiration, "timestamp": timestamp, "fee_limit": fee_limit, "memo": memo.hex(),
        "ref_block_bytes": ref_block_bytes.hex(), "ref_block_hash": ref_block_hash.hex(),
        "raw_data_hex": raw_bytes.hex(), "txid": txid, "signature": signature.hex(),
    }
    check_decoded(rec, raw_bytes)
    return rec


def main():
    if len(sys.argv) != 3 or not sys.argv[1].isdigit():
        sys.exit("usage: gen_tronpy.py COUNT SEED")
    count, seed = int(sys.argv[1]), sys.argv[2]
    # Known vector: this key must map to this address.
    known = PrivateKey(bytes.fromhex("279ff36d9bf9f305af3280034bb4187c6dd299bac6b26a3c20b999c7c0d50e6e"))
    check("known vector", known.public_key.to_base58check_address(), "TPX6HK2NRN4XKRX1JAhbC827bm7gMmy5w1")
    # Never contacted: everything below is built offline.
    client = Tron(HTTPProvider("http://127.0.0.1:9"))
    usdt = Contract(USDT, abi=[TRANSFER_ABI], client=client)
    rng = Rng(seed)
    for _ in range(count):
        print(json.dumps(generate(client, usdt, rng), separators=(",", ":")))


if __name__ == "__main__":
    main()
