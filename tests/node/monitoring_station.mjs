#!/usr/bin/env node
// A strict OCPP 2.0.1 station with variable monitoring and customer information, built on the npm
// package `ocpp-rpc` in strict mode: every frame the CSMS sends is validated against the official
// schemas (the date-time format tightened to RFC 3339, as in strict_station.mjs).
//
//   node monitoring_station.mjs --url ws://127.0.0.1:PORT/ocpp --id CP1 --protocol ocpp2.0.1 [--linger S]
//
// It boots, then answers the CSMS until --linger seconds pass or "quit" comes on stdin:
//   SetVariableMonitoring  known components/variables (below) are Accepted with an id; an accepted
//                          monitor raises one NotifyEvent right after the answer (as if it tripped)
//   ClearVariableMonitoring  Accepted / NotFound per id
//   GetMonitoringReport    one NotifyMonitoringReport part per monitor (seqNo, tbc); EmptyResultSet
//   SetMonitoringBase      HardWiredOnly removes the custom monitors; SetMonitoringLevel Accepted
//   CustomerInformation    customers it knows: a report in three NotifyCustomerInformation parts;
//                          clear forgets the customer; an unknown customer is Invalid
// Output: one JSON object per line, as strict_station.mjs prints (call, reply, answer, error, exit ...).

import { createRequire } from 'node:module';
import readline from 'node:readline';

const require = createRequire(import.meta.url);
const { RPCClient, createRPCError, createValidator } = require('ocpp-rpc');

const args = { linger: 60 };
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
    const next = () => argv[++i];
    switch (argv[i]) {
        case '--url': args.url = next(); break;
        case '--id': args.id = next(); break;
        case '--protocol': args.protocol = next(); break;
        case '--linger': args.linger = Number(next()); break;
        case '--token': args.token = next(); break;
        default: process.stderr.write(`monitoring_station: unknown argument ${argv[i]}\n`); process.exit(2);
    }
}
if (!args.url || !args.id || args.protocol !== 'ocpp2.0.1') {
    process.stderr.write('usage: monitoring_station.mjs --url URL --id STATION --protocol ocpp2.0.1 [--linger S]\n');
    process.exit(2);
}

let violations = 0;
const emit = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');
const violation = (kind, details) => { violations++; emit({ event: 'error', kind, ...details }); };
const now = () => new Date().toISOString();
const errInfo = (err) => (err ? { name: err.name, code: err.rpcErrorCode, message: err.message, details: err.details } : null);

const RFC3339 = /^(\d{4})-(\d\d)-(\d\d)[Tt](\d\d):(\d\d):(\d\d)(\.\d+)?([Zz]|[+-]\d\d:\d\d)$/;
function validator() {
    const v = createValidator('ocpp2.0.1', require('ocpp-rpc/lib/schemas/ocpp2_0_1.json'));
    v._ajv.addFormat('date-time', { type: 'string', validate: (s) => RFC3339.test(s) });
    return v;
}

const client = new RPCClient({
    endpoint: args.url, identity: args.id, protocols: ['ocpp2.0.1'], strictMode: true,
    strictModeValidators: [validator()], reconnect: false, callTimeoutMs: 30000, respondWithDetailedErrors: true,
});
client.on('strictValidationFailure', (ev) => violation(ev.outbound ? 'own_frame_invalid' : 'strict', {
    action: ev.method, messageId: ev.messageId, isCall: ev.isCall, params: ev.params, result: ev.result,
    error: errInfo(ev.error) }));
client.on('badMessage', ({ buffer, error }) => violation('bad_frame', { raw: buffer.toString('utf8'), error: errInfo(error) }));
let closing = false;
client.on('disconnect', ({ code, reason }) => {
    emit({ event: 'disconnected', code, reason: String(reason ?? '') });
    if (!closing) violation('unexpected_disconnect', { code });
});

async function call(action, params) {
    try {
        const payload = await client.call(action, params);
        emit({ event: 'answer', action, params, payload });
        return payload;
    } catch (err) {
        violation('call_failed', { action, params, error: errInfo(err) });
        throw err;
    }
}

// The device model this station monitors: component name -> variable names.
const MODEL = { EVSE: ['Power', 'AvailabilityState'], ChargingStation: ['Problem', 'Temperature'],
                Connector: ['AvailabilityState'] };
const monitors = new Map([[1, { id: 1, component: { name: 'ChargingStation' }, variable: { name: 'Problem' },
                                 type: 'Delta', value: 1, severity: 2, transaction: false, hardWired: true }]]);
let nextMonitorId = 100;
let eventId = 0;
const customers = new Map([['CUST-1', 'name=Ada Lovelace;card=CUST-1;sessions=12;last=2026-11-30T18:02:11Z']]);
if (args.token) customers.set(args.token, `card=${args.token};sessions=3`);
const afterReply = new Map();

function handle(action, fn) {
    client.handle(action, async ({ messageId, params }) => {
        emit({ event: 'call', action, id: messageId, params });
        const then = (f) => afterReply.set(messageId, f);
        const payload = await fn(params, then);
        emit({ event: 'reply', action, id: messageId, payload });
        return payload;
    });
}
client.on('response', ({ outbound, payload }) => {
    if (!outbound) return;
    const follow = afterReply.get(payload[1]);
    if (follow) {
        afterReply.delete(payload[1]);
        if (payload[0] === 3) setImmediate(() => follow().catch(err => violation('followup_failed', { error: errInfo(err) })));
    }
});
client.handle(async ({ method, messageId, params }) => {
    emit({ event: 'call', action: method, id: messageId, params, unhandled: true });
    throw createRPCError('NotImplemented', `this station does not implement ${method}`);
});

const known = (c, v) => (MODEL[c.name] ? (MODEL[c.name].includes(v.name) ? 'Accepted' : 'UnknownVariable') : 'UnknownComponent');

handle('SetVariableMonitoring', async (p, then) => {
    const results = [];
    const tripped = [];
    for (const d of p.setMonitoringData) {
        let status = known(d.component, d.variable);
        if (status === 'Accepted' && d.type === 'PeriodicClockAligned') status = 'UnsupportedMonitorType';
        const r = { status, type: d.type, severity: d.severity, component: d.component, variable: d.variable };
        if (status === 'Accepted') {
            const id = d.id ?? nextMonitorId++;
            const m = { id, component: d.component, variable: d.variable, type: d.type, value: d.value,
                        severity: d.severity, transaction: d.transaction ?? false };
            monitors.set(id, m);
            r.id = id;
            tripped.push(m);
        }
        results.push(r);
    }
    if (tripped.length) then(async () => {
        await call('NotifyEvent', { generatedAt: now(), seqNo: 0, eventData: tripped.map(m => ({
            eventId: ++eventId, timestamp: now(), trigger: 'Alerting', actualValue: String(m.value + 1),
            eventNotificationType: 'CustomMonitor', variableMonitoringId: m.id, component: m.component,
            variable: m.variable, techCode: 'T1' })) });
        emit({ event: 'events_sent', ids: tripped.map(m => m.id) });
    });
    return { setMonitoringResult: results };
});

handle('ClearVariableMonitoring', async (p) => ({ clearMonitoringResult: p.id.map(id => {
    const m = monitors.get(id);
    if (!m) return { id, status: 'NotFound' };
    if (m.hardWired) return { id, status: 'Rejected' };
    monitors.delete(id);
    return { id, status: 'Accepted' };
}) }));

const CRITERIA = { ThresholdMonitoring: ['UpperThreshold', 'LowerThreshold'], DeltaMonitoring: ['Delta'],
                   PeriodicMonitoring: ['Periodic', 'PeriodicClockAligned'] };
handle('GetMonitoringReport', async (p, then) => {
    const types = p.monitoringCriteria ? p.monitoringCriteria.flatMap(c => CRITERIA[c]) : null;
    const picked = [...monitors.values()].filter(m => (!types || types.includes(m.type))
        && (!p.componentVariable || p.componentVariable.some(cv => cv.component.name === m.component.name
            && (!cv.variable || cv.variable.name === m.variable.name))));
    if (!picked.length) return { status: 'EmptyResultSet' };
    then(async () => {
        for (let i = 0; i < picked.length; i++) {
            const m = picked[i];
            const tbc = i + 1 < picked.length;
            await call('NotifyMonitoringReport', { requestId: p.requestId, seqNo: i, generatedAt: now(), ...(tbc ? { tbc } : {}),
                monitor: [{ component: m.component, variable: m.variable, variableMonitoring: [
                    { id: m.id, transaction: m.transaction, value: m.value, type: m.type, severity: m.severity }] }] });
        }
        emit({ event: 'monitoring_report_sent', requestId: p.requestId, monitors: picked.length });
    });
    return { status: 'Accepted' };
});

handle('SetMonitoringBase', async (p) => {
    if (p.monitoringBase === 'HardWiredOnly') for (const [id, m] of monitors) if (!m.hardWired) monitors.delete(id);
    return { status: 'Accepted' };
});
handle('SetMonitoringLevel', async () => ({ status: 'Accepted' }));

handle('CustomerInformation', async (p, then) => {
    const who = p.idToken?.idToken ?? p.customerIdentifier ?? p.customerCertificate?.serialNumber;
    if (!customers.has(who)) return { status: 'Invalid' };
    const data = customers.get(who);
    if (p.report) then(async () => {
        const parts = [data.slice(0, 10), data.slice(10, 25), data.slice(25)];
        for (let seqNo = 0; seqNo < parts.length; seqNo++) {
            const tbc = seqNo + 1 < parts.length;
            await call('NotifyCustomerInformation', { data: parts[seqNo], seqNo, generatedAt: now(),
                                                      requestId: p.requestId, ...(tbc ? { tbc } : {}) });
        }
        if (p.clear) customers.delete(who);
        emit({ event: 'customer_information_sent', requestId: p.requestId, cleared: p.clear });
    });
    if (p.clear && !p.report) customers.delete(who);
    return { status: 'Accepted' };
});

async function main() {
    try {
        await client.connect();
    } catch (err) {
        emit({ event: 'error', kind: 'connect_failed', error: { message: err.message } });
        process.exit(2);
    }
    emit({ event: 'connected', protocol: client.protocol });
    try {
        const boot = await call('BootNotification', { reason: 'PowerUp', chargingStation: { vendorName: 'StrictVendor', model: 'ocpp-rpc-monitoring' } });
        if (boot.status !== 'Accepted') violation('boot_not_accepted', { boot });
        await call('StatusNotification', { timestamp: now(), connectorStatus: 'Available', evseId: 1, connectorId: 1 });
        emit({ event: 'lingering', seconds: args.linger });
        const rl = readline.createInterface({ input: process.stdin });
        const why = await new Promise((resolve) => {
            rl.on('line', (line) => { if (line.trim() === 'quit') resolve('quit'); });
            setTimeout(() => resolve('timeout'), args.linger * 1000);
        });
        rl.close();
        emit({ event: 'linger_end', why });
    } catch (err) {
        if (!violations) violation('aborted', { error: errInfo(err), stack: err?.stack });
    }
    closing = true;
    try { await client.close({ code: 1000, reason: 'done', awaitPending: true }); } catch { /* closed */ }
    const code = violations ? 1 : 0;
    emit({ event: 'exit', code, violations });
    process.exitCode = code;
    setTimeout(() => process.exit(code), 50).unref();
}

main().catch(err => { emit({ event: 'error', kind: 'crash', error: errInfo(err) }); process.exit(1); });
