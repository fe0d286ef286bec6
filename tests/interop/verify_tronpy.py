#!/usr/bin/env python3
"""Usage: python verify_tronpy.py < lines.jsonl

Each stdin line is {"txid": hex, "signature": hex (65 bytes r||s||v), "owner": Base58}.
Recovers the signer with tronpy's own Signature.recover_public_key_from_msg_hash and
compares it with owner. Prints "N passed, M failed"; exits 1 on any failure.
"""
import json
import sys

from tronpy.keys import Signature

HALF_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141 // 2


def verify(line):
    rec = json.loads(line)
    txid = bytes.fromhex(rec["txid"])
    if len(txid) != 32:
        raise ValueError(f"txid is {len(txid)} bytes")
    # tronpy's Signature takes v as 0/1 or 27/28 (it normalises to 0/1), so no adapting here.
    sig = Signature.fromhex(rec["signature"])
    # tronpy (libsecp256k1 recovery) would also accept a high-S signature; our signer
    # promises low-S, so check that explicitly. (TronWeb's recovery rejects high-S itself.)
    if sig.s > HALF_N:
        raise ValueError("high-S signature")
    got = sig.recover_public_key_from_msg_hash(txid).to_base58check_address()
    if got != rec["owner"]:
        raise ValueError(f"recovered {got}, expected {rec['owner']}")


def main():
    passed = failed = 0
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            verify(line)
            passed += 1
        except Exception as err:  # report every bad line, then fail
            failed += 1
            print(f"verify_tronpy: FAILED: {err}\n  line: {line.strip()}", file=sys.stderr)
    print(f"{passed} passed, {failed} failed")
    if not passed and not failed:
        print("verify_tronpy: no input lines", file=sys.stderr)
    sys.exit(1 if failed or not passed else 0)


if __name__ == "__main__":
    main()
