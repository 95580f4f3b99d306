// Single-query latency of a ColdOpen server from Node (@grpc/grpc-js), a client that is not Python:
// benchmarks/search.py runs it beside its Python client (`--node-modules DIR`) so that the Python client's
// own cost per call can be told apart from the server's.
//
//   NODE_PATH=DIR/node_modules node benchmarks/grpc_client.js ADDRESS PROTO_ROOT QUERIES.json CALLS
//
// QUERIES.json: a list of embeddings. Prints one JSON line: p50 / p99 ms of Search(embedding, k=10) and of
// a health Check (the floor: no work behind it), each over CALLS sequential calls after 10 warm-up calls.
'use strict';
const grpc = require('@grpc/grpc-js');
const loader = require('@grpc/proto-loader');
const fs = require('fs');
const path = require('path');

const [address, protoRoot, queriesFile, callsArg] = process.argv.slice(2);
const calls = parseInt(callsArg || '300', 10);
const definition = loader.loadSync(path.join(protoRoot, 'coldopen/v1/coldopen.proto'), {
  includeDirs: [protoRoot], keepCase: true, longs: Number, enums: String, defaults: false,
});
const api = grpc.loadPackageDefinition(definition).coldopen.v1;
const client = new api.ContentIndex(address, grpc.credentials.createInsecure());
const queries = JSON.parse(fs.readFileSync(queriesFile, 'utf8'));

// grpc.health.v1.Health/Check with an empty HealthCheckRequest: an empty message is zero bytes, so the
// call is made without the health proto (the reply's bytes are not decoded).
function check() {
  return new Promise((resolve, reject) => client.makeUnaryRequest(
    '/grpc.health.v1.Health/Check', () => Buffer.alloc(0), (b) => b, {}, {}, (err, r) => (err ? reject(err) : resolve(r))));
}

function search(q) {
  return new Promise((resolve, reject) => client.Search({ embedding: { values: q }, k: 10 }, (err, r) => {
    if (err) return reject(err);
    if (!r.neighbours || r.neighbours.length !== 10) return reject(new Error('expected 10 neighbours'));
    return resolve(r);
  }));
}

function percentile(values, q) {
  const s = [...values].sort((a, b) => a - b);
  const pos = (s.length - 1) * q / 100;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return s[lo] + (s[hi] - s[lo]) * (pos - lo);
}

async function timed(call) {
  for (let i = 0; i < 10; i++) await call(i);
  const ms = [];
  for (let i = 0; i < calls; i++) {
    const t = process.hrtime.bigint();
    await call(i);
    ms.push(Number(process.hrtime.bigint() - t) / 1e6);
  }
  return [+percentile(ms, 50).toFixed(3), +percentile(ms, 99).toFixed(3)];
}

(async () => {
  const out = {
    node: process.version,
    grpc_js: require('@grpc/grpc-js/package.json').version,
    grpc: await timed((i) => search(queries[i % queries.length])),
    grpc_floor: await timed(() => check()),
  };
  console.log(JSON.stringify(out));
  client.close();
})().catch((e) => { console.error(`grpc_client.js: ${e.message}`); process.exit(1); });
