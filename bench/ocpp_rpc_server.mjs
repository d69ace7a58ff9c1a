#!/usr/bin/env node
// The comparison server for `csms bench --against-node` (issue 19): a central system built on the
// npm package `ocpp-rpc` in strict mode that validates every frame in both directions against
// the official OCPP 1.6 and 2.0.1 JSON schemas ocpp-rpc ships, answers every call the benchmark's
// stations send, and stores nothing.
//
//   node bench/ocpp_rpc_server.mjs --port 9300 [--host 127.0.0.1]
//
// It resolves `ocpp-rpc` from tests/node/node_modules (installed by `make test`, or
// `npm ci --prefix tests/node`). Prints "listening <port>" on stdout once it accepts connections.

import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(here, '..', 'tests', 'node', 'package.json'));
const { RPCServer } = require('ocpp-rpc');

const args = process.argv.slice(2);
const opt = (name, dflt) => {
    const i = args.indexOf(name);
    return i >= 0 && i + 1 < args.length ? args[i + 1] : dflt;
};
const port = Number(opt('--port', '9300'));
const host = opt('--host', '127.0.0.1');

const now = () => new Date().toISOString();
let nextTx = 1;

const accepted16 = { idTagInfo: { status: 'Accepted' } };
const handlers16 = {
    BootNotification: () => ({ status: 'Accepted', interval: 300, currentTime: now() }),
    Heartbeat: () => ({ currentTime: now() }),
    StatusNotification: () => ({}),
    Authorize: () => accepted16,
    StartTransaction: () => ({ transactionId: nextTx++, idTagInfo: { status: 'Accepted' } }),
    StopTransaction: () => accepted16,
    MeterValues: () => ({}),
    DataTransfer: () => ({ status: 'Accepted' }),
    DiagnosticsStatusNotification: () => ({}),
    FirmwareStatusNotification: () => ({}),
};
const handlers201 = {
    BootNotification: () => ({ status: 'Accepted', interval: 300, currentTime: now() }),
    Heartbeat: () => ({ currentTime: now() }),
    StatusNotification: () => ({}),
    Authorize: () => ({ idTokenInfo: { status: 'Accepted' } }),
    TransactionEvent: ({ params }) => (params.idToken ? { idTokenInfo: { status: 'Accepted' } } : {}),
    MeterValues: () => ({}),
    DataTransfer: () => ({ status: 'Accepted' }),
    NotifyReport: () => ({}),
    NotifyEvent: () => ({}),
    SecurityEventNotification: () => ({}),
    FirmwareStatusNotification: () => ({}),
    LogStatusNotification: () => ({}),
};

const server = new RPCServer({ protocols: ['ocpp1.6', 'ocpp2.0.1'], strictMode: true });
server.auth((accept, _reject, handshake) => accept({ identity: handshake.identity }));
server.on('client', (client) => {
    const handlers = client.protocol === 'ocpp1.6' ? handlers16 : handlers201;
    for (const [method, fn] of Object.entries(handlers)) client.handle(method, fn);
    client.on('error', () => {});
});
server.on('error', (err) => console.error(err));
await server.listen(port, host);
console.log(`listening ${port}`);
const stop = async () => { await server.close({ awaitPending: false, force: true }); process.exit(0); };
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
