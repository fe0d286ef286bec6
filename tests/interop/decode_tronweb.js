#!/usr/bin/env node
// Usage: node decode_tronweb.js < cases.jsonl
// Reads one JSON object per line: {raw_data_hex, owner, to, token, amount, expiration,
// timestamp, fee_limit, ref_block_bytes, ref_block_hash} (addresses Base58, token null for
// TRX, amount a decimal string). Decodes raw_data_hex with TronWeb alone (the contract type
// too comes from the bytes, not from the line), prints what TronWeb read as one JSON line
// with the same keys plus `txid`, and exits 1 if any field differs from the line's.
'use strict';
const path = require('path');
const { createHash } = require('crypto');

const cache = process.env.INTEROP_CACHE || path.resolve(__dirname, '../../target/interop-cache');
const nodeModules = process.env.INTEROP_NODE_MODULES || path.join(cache, 'node', 'node_modules');
const { TronWeb, utils } = require(require.resolve('tronweb', { paths: [nodeModules] }));
const { Transaction } = globalThis.TronWebProto;

const TYPES = { 1: 'TransferContract', 31: 'TriggerSmartContract' };
const TRANSFER_SELECTOR = 'a9059cbb';

const lower = (x) => String(x).toLowerCase();
const base58 = (hex) => TronWeb.address.fromHex(lower(hex));

function decode(rawHex) {
  const raw = Transaction.raw.deserializeBinary(Buffer.from(rawHex, 'hex'));
  const contracts = raw.getContractList();
  if (contracts.length !== 1) throw new Error(`${contracts.length} contracts`);
  const type = TYPES[contracts[0].getType()];
  if (!type) throw new Error(`contract type ${contracts[0].getType()}`);
  const d = utils.deserializeTx.deserializeTransaction(type, rawHex);
  const v = d.contract[0].parameter.value;
  const out = {
    owner: base58(v.owner_address),
    expiration: Number(d.expiration),
    timestamp: Number(d.timestamp),
    fee_limit: Number(d.fee_limit || 0),
    ref_block_bytes: lower(d.ref_block_bytes),
    ref_block_hash: lower(d.ref_block_hash),
    ref_block_num: raw.getRefBlockNum(),
    memo: lower(d.data || ''),
    txid: createHash('sha256').update(Buffer.from(rawHex, 'hex')).digest('hex'),
  };
  if (type === 'TransferContract') {
    out.token = null;
    out.to = base58(v.to_address);
    out.amount = BigInt(v.amount).toString();
  } else {
    const data = lower(v.data);
    if (data.length !== 8 + 64 + 64 || !data.startsWith(TRANSFER_SELECTOR)) {
      throw new Error(`not a transfer(address,uint256) call: ${data}`);
    }
    out.token = base58(v.contract_address);
    out.to = base58('41' + data.slice(8 + 24, 8 + 64));
    out.amount = BigInt('0x' + data.slice(8 + 64)).toString();
    out.call_value = Number(v.call_value || 0);
  }
  return out;
}

async function main() {
  const input = require('fs').readFileSync(0, 'utf8');
  const lines = input.split('\n').filter((l) => l.trim() !== '');
  if (lines.length === 0) throw new Error('no input');
  let failed = 0;
  for (const line of lines) {
    const want = JSON.parse(line);
    const got = decode(want.raw_data_hex);
    for (const key of ['owner', 'to', 'token', 'amount', 'expiration', 'timestamp', 'fee_limit',
      'ref_block_bytes', 'ref_block_hash']) {
      if (String(got[key]) !== String(want[key])) {
        failed++;
        console.error(`decode_tronweb: ${key}: TronWeb read ${got[key]}, expected ${want[key]}`);
      }
    }
    process.stdout.write(JSON.stringify(got) + '\n');
  }
  if (failed > 0) {
    console.error(`decode_tronweb: ${failed} field(s) differ`);
    process.exit(1);
  }
}

main().catch((e) => { console.error(`decode_tronweb: ${e.stack || e}`); process.exit(1); });
