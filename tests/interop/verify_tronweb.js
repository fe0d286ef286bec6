#!/usr/bin/env node
// Usage: node verify_tronweb.js < lines.jsonl
// Each stdin line is {"txid": hex, "signature": hex (65 bytes r||s||v), "owner": Base58}.
// Recovers the signer with TronWeb's own utils.crypto.ecRecover (the function behind
// Trx.ecRecover) and compares it with owner. Prints "N passed, M failed"; exits 1 on
// any failure.
'use strict';
const path = require('path');
const readline = require('readline');

// TronWeb lives where setup.sh put it (INTEROP_NODE_MODULES, or under INTEROP_CACHE).
const cache = process.env.INTEROP_CACHE || path.resolve(__dirname, '../../target/interop-cache');
const nodeModules = process.env.INTEROP_NODE_MODULES || path.join(cache, 'node', 'node_modules');
const { TronWeb, utils } = require(require.resolve('tronweb', { paths: [nodeModules] }));

function verify(line) {
  const rec = JSON.parse(line);
  if (!/^[0-9a-fA-F]{64}$/.test(rec.txid)) throw new Error('txid is not 32 bytes of hex');
  if (!/^[0-9a-fA-F]{130}$/.test(rec.signature)) throw new Error('signature is not 65 bytes of hex');
  // ecRecover goes through ethers' Signature.from, which takes v as 0/1 or 27/28
  // (no adapting needed) and throws "non-canonical s" on a high-S signature.
  const got = TronWeb.address.fromHex(utils.crypto.ecRecover(rec.txid, rec.signature));
  if (got !== rec.owner) throw new Error(`recovered ${got}, expected ${rec.owner}`);
}

async function main() {
  let passed = 0;
  let failed = 0;
  for await (const line of readline.createInterface({ input: process.stdin, crlfDelay: Infinity })) {
    if (!line.trim()) continue;
    try {
      verify(line);
      passed++;
    } catch (e) {
      failed++;
      console.error(`verify_tronweb: FAILED: ${e.message}\n  line: ${line.trim()}`);
    }
  }
  console.log(`${passed} passed, ${failed} failed`);
  if (!passed && !failed) console.error('verify_tronweb: no input lines');
  process.exit(failed || !passed ? 1 : 0);
}

main().catch((e) => { console.error(`verify_tronweb: ${e.stack || e}`); process.exit(1); });
