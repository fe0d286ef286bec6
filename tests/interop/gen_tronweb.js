#!/usr/bin/env node
// Usage: node gen_tronweb.js COUNT SEED
// Builds COUNT random TRX / USDT transfers offline with TronWeb 6 and prints
// one JSON object per line (see README.md). The random draws are made in the
// same order as gen_tronpy.py, so the same SEED gives the same transactions.
'use strict';
const path = require('path');
const { createHash } = require('crypto');

// TronWeb lives where setup.sh put it (INTEROP_NODE_MODULES, or under INTEROP_CACHE).
const cache = process.env.INTEROP_CACHE || path.resolve(__dirname, '../../target/interop-cache');
const nodeModules = process.env.INTEROP_NODE_MODULES || path.join(cache, 'node', 'node_modules');
const { TronWeb, utils } = require(require.resolve('tronweb', { paths: [nodeModules] }));
const { Transaction } = globalThis.TronWebProto; // TronWeb's own protobuf classes

const USDT = 'TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t';
const T_2026 = 1767225600000n; // 2026-01-01T00:00:00Z in ms
const T_2027 = 1798761600000n;
const SECP256K1_N = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;

// Deterministic byte stream: sha256("SEED/0") || sha256("SEED/1") || ...
class Rng {
  constructor(seed) { this.seed = seed; this.counter = 0; this.buf = Buffer.alloc(0); }
  bytes(n) {
    while (this.buf.length < n) {
      const block = createHash('sha256').update(`${this.seed}/${this.counter++}`).digest();
      this.buf = Buffer.concat([this.buf, block]);
    }
    const out = this.buf.subarray(0, n);
    this.buf = this.buf.subarray(n);
    return Buffer.from(out);
  }
  between(lo, hi) { // uniform-ish integer in [lo, hi], as BigInt
    lo = BigInt(lo); hi = BigInt(hi);
    return lo + BigInt('0x' + this.bytes(32).toString('hex')) % (hi - lo + 1n);
  }
  spread(lo, hi) { // pick a magnitude first, so short and long varints both show up
    hi = BigInt(hi);
    const cap = 10n ** this.between(1, hi.toString().length);
    return this.between(lo, cap < hi ? cap : hi);
  }
}

function fail(msg) { throw new Error(msg); }
function check(what, got, want) {
  if (String(got) !== String(want)) fail(`${what}: decoded ${got}, generated ${want}`);
}
// TronWeb's decoder prints hex in upper case.
const checkHex = (what, got, want) => check(what, String(got).toLowerCase(), String(want).toLowerCase());
const hexOf = (address) => TronWeb.address.toHex(address).toLowerCase(); // 41 + 20 bytes

// The decoder on the Rust side is strict; make sure TronWeb's bytes obey its rules
// and that TronWeb reads back exactly the fields we report.
function checkDecoded(rec, type) {
  const raw = Transaction.raw.deserializeBinary(Buffer.from(rec.raw_data_hex, 'hex'));
  check('contract count', raw.getContractList().length, 1);
  check('ref_block_num', raw.getRefBlockNum(), 0);
  const d = utils.deserializeTx.deserializeTransaction(type, rec.raw_data_hex);
  const c = d.contract[0];
  const v = c.parameter.value;
  check('type', c.type, type);
  check('type_url', c.parameter.type_url, `type.googleapis.com/protocol.${type}`);
  check('Permission_id', c.Permission_id, 0);
  check('auths', d.auths.length, 0);
  checkHex('scripts', d.scripts, '');
  checkHex('memo', d.data, rec.memo);
  check('fee_limit', d.fee_limit, rec.fee_limit);
  checkHex('ref_block_bytes', d.ref_block_bytes, rec.ref_block_bytes);
  checkHex('ref_block_hash', d.ref_block_hash, rec.ref_block_hash);
  check('expiration', d.expiration, rec.expiration);
  check('timestamp', d.timestamp, rec.timestamp);
  checkHex('owner', v.owner_address, hexOf(rec.owner));
  if (type === 'TransferContract') {
    checkHex('to', v.to_address, hexOf(rec.to));
    check('amount', v.amount, rec.amount);
  } else {
    checkHex('contract', v.contract_address, hexOf(USDT));
    const word = (x) => x.padStart(64, '0');
    checkHex('data', v.data, 'a9059cbb' + word(hexOf(rec.to).slice(2)) + word(BigInt(rec.amount).toString(16)));
    check('call_value', v.call_value, 0);
    check('call_token_value', v.call_token_value, 0);
    check('token_id', v.token_id, 0);
  }
  checkHex('txid', createHash('sha256').update(Buffer.from(rec.raw_data_hex, 'hex')).digest('hex'), rec.txid);
  const signer = TronWeb.address.fromHex(utils.crypto.ecRecover(rec.txid, rec.signature));
  check('recovered signer', signer, rec.owner);
}

async function generate(tronWeb, rng) {
  const kind = rng.between(0, 1) === 0n ? 'trx' : 'trc20';
  const privkey = rng.bytes(32).toString('hex');
  const k = BigInt('0x' + privkey);
  if (k === 0n || k >= SECP256K1_N) fail('drew an invalid private key');
  const to = TronWeb.address.fromHex('41' + rng.bytes(20).toString('hex'));
  const amount = kind === 'trx' ? rng.spread(1, 10n ** 15n) : rng.spread(1, 10n ** 20n);
  const memo = rng.between(0, 2) === 0n ? '' : rng.bytes(Number(rng.between(1, 100))).toString('hex');
  const timestamp = rng.between(T_2026, T_2027 - 1n);
  const expiration = timestamp + rng.between(1000, 86400000);
  const ref_block_bytes = rng.bytes(2).toString('hex');
  const ref_block_hash = rng.bytes(8).toString('hex');
  const fee_limit = kind === 'trx' ? 0n : rng.spread(1, 15000n * 1000000n);

  const owner = TronWeb.address.fromPrivateKey(privkey);
  // With a complete blockHeader TronWeb builds locally (txJsonToPb -> txPbToTxID)
  // instead of asking a node for the reference block.
  const blockHeader = { ref_block_bytes, ref_block_hash, expiration: Number(expiration), timestamp: Number(timestamp) };
  const builder = tronWeb.transactionBuilder;
  let tx;
  if (kind === 'trx') {
    tx = await builder.sendTrx(to, Number(amount), owner, { blockHeader });
  } else {
    const params = [{ type: 'address', value: to }, { type: 'uint256', value: amount.toString() }];
    const options = { feeLimit: Number(fee_limit), txLocal: true, blockHeader };
    ({ transaction: tx } = await builder.triggerSmartContract(USDT, 'transfer(address,uint256)', options, params, owner));
  }
  if (memo) tx = await builder.addUpdateData(tx, memo, 'hex', { txLocal: true });
  if (!utils.transaction.txCheck(tx)) fail('TronWeb txCheck rejected its own transaction');
  const signed = await tronWeb.trx.sign(tx, privkey);

  const rec = {
    source: 'tronweb', kind, privkey, owner, to, token: kind === 'trx' ? null : USDT,
    amount: amount.toString(), expiration: Number(expiration), timestamp: Number(timestamp),
    fee_limit: Number(fee_limit), memo, ref_block_bytes, ref_block_hash,
    raw_data_hex: signed.raw_data_hex.toLowerCase(), txid: signed.txID.toLowerCase(),
    signature: signed.signature[0].toLowerCase(),
  };
  checkDecoded(rec, kind === 'trx' ? 'TransferContract' : 'TriggerSmartContract');
  return rec;
}

async function main() {
  const [count, seed] = process.argv.slice(2);
  if (!/^\d+$/.test(count || '') || seed === undefined) fail('usage: gen_tronweb.js COUNT SEED');
  // Known vector: this key must map to this address.
  check('known vector', TronWeb.address.fromPrivateKey('279ff36d9bf9f305af3280034bb4187c6dd299bac6b26a3c20b999c7c0d50e6e'),
    'TPX6HK2NRN4XKRX1JAhbC827bm7gMmy5w1');
  // Never contacted: every call below is local.
  const tronWeb = new TronWeb({ fullHost: 'http://127.0.0.1:9' });
  const rng = new Rng(seed);
  for (let i = 0; i < Number(count); i++) {
    process.stdout.write(JSON.stringify(await generate(tronWeb, rng)) + '\n');
  }
}

main().catch((e) => { console.error(`gen_tronweb: ${e.stack || e}`); process.exit(1); });
