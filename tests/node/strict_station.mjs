#!/usr/bin/env node
// A strict, independent OCPP charging station built on the npm package `ocpp-rpc` in strict mode.
//
// Every frame the CSMS sends (answers to our calls and the CSMS's own calls) is validated by
// ocpp-rpc against the official OCPP JSON schemas it ships; on top of that this script checks
// the OCPP-J framing rules a schema cannot see (CALLERROR shape and codes, unique message ids,
// one outstanding CSMS call at a time) and a few semantic ones (boot/authorize Accepted, clock).
//
//   node strict_station.mjs --url ws://127.0.0.1:PORT/ocpp --id CP1 --protocol ocpp1.6|ocpp2.0.1|ocpp2.1
//        [--password P] [--token TAG] [--linger SECONDS] [--allow-pending] [--trace] [--security-extension]
//        [--bad | --edge basic|txid-reuse|late-ended|seq-reorder|lost-tx]
//
// Modes: the default walk (boot, StatusNotification, Heartbeat, Authorize, start, MeterValues
// (one sample in kWh), stop, DataTransfer; on ocpp2.1 also a periodic event stream: opened,
// one NotifyPeriodicEventStream SEND (MessageTypeId 6) that must get no answer, closed), then --linger answering the CSMS's calls (remote
// start/stop really start/stop a transaction, Reset really reconnects and boots again, GetBaseReport
// sends NotifyReport, TriggerMessage sends the message). --bad sends broken frames and checks the
// CALLERROR each one gets; --edge sends valid but unusual traffic and checks it gets CALLRESULTs.
// --allow-pending: a Pending boot is retried after its interval or when the CSMS triggers it.
//
// It prints one JSON object per line on stdout:
//   {"event":"answer","action":A,"params":{...},"payload":{...}}  the CSMS answered our call A
//   {"event":"call","action":A,"id":ID,"params":{...}}           the CSMS called us
//   {"event":"reply","action":A,"id":ID,"payload":{...}}          what we answered
//   {"event":"error","kind":K,...}                                a violation (makes the exit code 1)
//   {"event":"boot"|"walk_done"|"tx_started"|"tx_stopped"|"triggered"|"rebooted"|"status"|"report_sent"|
//            "lingering"|"bad_case"|"edge_case"|"edge_done"|"exit",...}
// While lingering it reads stdin: a line "quit" ends the linger early (open transactions are
// stopped first); a line "call {"action": A, "params": {...}}" sends that call. Exit code: 0 clean, 1 any violation, 2 bad usage or no connection.

import { createRequire } from 'node:module';
import readline from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';

const require = createRequire(import.meta.url);
const { RPCClient, createRPCError, createValidator } = require('ocpp-rpc');

// ---------------------------------------------------------------------------------------------
// arguments

function parseArgs(argv) {
    const out = { linger: 0, token: 'STRICT-TAG-1', bad: false, trace: false, vendor: 'org.csms.strict',
                  meterStart: 12345, samples: 3, callTimeout: 30 };
    for (let i = 0; i < argv.length; i++) {
        const a = argv[i];
        const next = () => {
            if (i + 1 >= argv.length) usage(`${a} needs a value`);
            return argv[++i];
        };
        switch (a) {
            case '--url': out.url = next(); break;
            case '--id': out.id = next(); break;
            case '--protocol': out.protocol = next(); break;
            case '--password': out.password = next(); break;
            case '--token': out.token = next(); break;
            case '--linger': out.linger = Number(next()); break;
            case '--samples': out.samples = Number(next()); break;
            case '--meter-start': out.meterStart = Number(next()); break;
            case '--bad': out.bad = true; break;
            case '--allow-pending': out.allowPending = true; break;
            case '--call-timeout': out.callTimeout = Number(next()); break;
            case '--edge': out.edge = next(); break;
            case '--trace': out.trace = true; break;
            case '--security-extension': out.securityExtension = true; break;
            case '-h': case '--help': usage(); break;
            default: usage(`unknown argument ${a}`);
        }
    }
    if (!out.url || !out.id || !out.protocol) usage('--url, --id and --protocol are required');
    if (!['ocpp1.6', 'ocpp2.0.1', 'ocpp2.1'].includes(out.protocol)) usage('--protocol is ocpp1.6, ocpp2.0.1 or ocpp2.1');
    if (!Number.isFinite(out.linger) || out.linger < 0) usage('--linger is a number of seconds');
    return out;
}

function usage(msg) {
    if (msg) process.stderr.write(`strict_station: ${msg}\n`);
    process.stderr.write('usage: strict_station.mjs --url ws://HOST:PORT/ocpp --id STATION '
        + '--protocol ocpp1.6|ocpp2.0.1|ocpp2.1 [--password P] [--token TAG] [--linger S] [--allow-pending] [--trace] '
        + '[--bad | --edge basic|txid-reuse|late-ended|seq-reorder|lost-tx]\n');
    process.exit(2);
}

const args = parseArgs(process.argv.slice(2));
const V16 = args.protocol === 'ocpp1.6';
// OCPP 2.1 keeps every 2.0.1 message this script sends or answers: everything not V16 is the 2.x family.
const V21 = args.protocol === 'ocpp2.1';

// ---------------------------------------------------------------------------------------------
// output

let violations = 0;

function emit(obj) {
    process.stdout.write(JSON.stringify(obj) + '\n');
}

function violation(kind, details) {
    violations++;
    emit({ event: 'error', kind, ...details });
}

function errInfo(err) {
    if (!err) return null;
    return { name: err.name, code: err.rpcErrorCode, message: err.message, details: err.details };
}

// Error codes each version defines (OCPP-J 1.6 section 4.2.3 + errata; OCPP-J 2.0.1 section 4.3,
// kept by OCPP-J 2.1).
const ERROR_CODES = V16
    ? new Set(['NotImplemented', 'NotSupported', 'InternalError', 'ProtocolError', 'SecurityError',
        'FormationViolation', 'PropertyConstraintViolation', 'OccurenceConstraintViolation',
        'OccurrenceConstraintViolation', 'TypeConstraintViolation', 'GenericError'])
    : new Set(['FormatViolation', 'GenericError', 'InternalError', 'MessageTypeNotSupported', 'NotImplemented',
        'NotSupported', 'OccurrenceConstraintViolation', 'PropertyConstraintViolation', 'ProtocolError',
        'RpcFrameworkError', 'SecurityError', 'TypeConstraintViolation']);

const now = () => new Date().toISOString();

// ---------------------------------------------------------------------------------------------
// the station's state

const station = {
    evses: { 1: { status: 'Available', operative: true } },
    networkProfiles: {},
    tx: null,              // {id, evseId, idTag, meterStart, seqNo, startedAt, remoteStartId}
    tariffs: new Map(),    // 2.1: default tariffs set by the CSMS, by "evseId:tariffId"
    meterWh: args.meterStart,
    powerW: 11000,
    profiles: [],          // installed charging profiles: {evseId, profile}
    reservations: new Map(),
    localListVersion: 0,
    booted: false,
    rebooting: false,
    closingOnPurpose: false,
    txCounter: 0,
    txStatusAsked: [],     // 2.0.1: the transactionIds GetTransactionStatus asked about
    displayMessages: new Map(),  // 2.0.1: the display messages accepted, by id (MessageInfo)
};

// 1.6 configuration keys: [value, readonly]
const config16 = new Map([
    ['HeartbeatInterval', ['300', false]],
    ['ConnectionTimeOut', ['60', false]],
    ['MeterValueSampleInterval', ['60', false]],
    ['MeterValuesSampledData', ['Energy.Active.Import.Register,Power.Active.Import,Current.Import', false]],
    ['StopTxnSampledData', ['Energy.Active.Import.Register', false]],
    ['ClockAlignedDataInterval', ['0', false]],
    ['AuthorizeRemoteTxRequests', ['true', false]],
    ['LocalAuthorizeOffline', ['true', false]],
    ['LocalPreAuthorize', ['false', false]],
    ['NumberOfConnectors', ['1', true]],
    ['SupportedFeatureProfiles', ['Core,FirmwareManagement,LocalAuthListManagement,Reservation,SmartCharging,RemoteTrigger', true]],
    ['ChargeProfileMaxStackLevel', ['10', true]],
    ['ChargingScheduleAllowedChargingRateUnit', ['Current,Power', true]],
    ['ChargingScheduleMaxPeriods', ['24', true]],
    ['MaxChargingProfilesInstalled', ['10', true]],
    ['LocalAuthListEnabled', ['true', false]],
    ['LocalAuthListMaxLength', ['100', true]],
    ['SendLocalListMaxLength', ['100', true]],
    // the security extension's keys: GetLog, security events, certificates
    ...(args.securityExtension ? [['SecurityProfile', [args.password ? '1' : '0', true]], ['CpoName', ['Strict CPO', false]]] : []),
]);

// 2.0.1 device model: "Component[/evse]" -> Variable -> {value, mutability, dataType}
const variables201 = [
    { component: { name: 'OCPPCommCtrlr' }, variable: { name: 'HeartbeatInterval' }, value: '300', mutability: 'ReadWrite', dataType: 'integer', unit: 's' },
    { component: { name: 'OCPPCommCtrlr' }, variable: { name: 'MessageTimeout', instance: 'Default' }, value: '30', mutability: 'ReadOnly', dataType: 'integer', unit: 's' },
    { component: { name: 'OCPPCommCtrlr' }, variable: { name: 'NetworkConfigurationPriority' }, value: '0', mutability: 'ReadWrite', dataType: 'SequenceList' },
    { component: { name: 'SampledDataCtrlr' }, variable: { name: 'TxUpdatedInterval' }, value: '60', mutability: 'ReadWrite', dataType: 'integer', unit: 's' },
    { component: { name: 'SampledDataCtrlr' }, variable: { name: 'TxUpdatedMeasurands' }, value: 'Energy.Active.Import.Register,Power.Active.Import,Current.Import', mutability: 'ReadWrite', dataType: 'MemberList' },
    { component: { name: 'AuthCtrlr' }, variable: { name: 'AuthorizeRemoteStart' }, value: 'true', mutability: 'ReadWrite', dataType: 'boolean' },
    { component: { name: 'AuthCacheCtrlr' }, variable: { name: 'Enabled' }, value: 'true', mutability: 'ReadWrite', dataType: 'boolean' },
    { component: { name: 'TxCtrlr' }, variable: { name: 'EVConnectionTimeOut' }, value: '60', mutability: 'ReadWrite', dataType: 'integer', unit: 's' },
    { component: { name: 'DeviceDataCtrlr' }, variable: { name: 'ItemsPerMessage', instance: 'GetReport' }, value: '10', mutability: 'ReadOnly', dataType: 'integer' },
    { component: { name: 'SecurityCtrlr' }, variable: { name: 'SecurityProfile' }, value: args.password ? '1' : '0', mutability: 'ReadOnly', dataType: 'integer' },
    { component: { name: 'SmartChargingCtrlr' }, variable: { name: 'Enabled' }, value: 'true', mutability: 'ReadWrite', dataType: 'boolean' },
    { component: { name: 'SmartChargingCtrlr' }, variable: { name: 'RateUnit' }, value: 'A,W', mutability: 'ReadOnly', dataType: 'MemberList' },
    { component: { name: 'EVSE', evse: { id: 1 } }, variable: { name: 'Power' }, value: '22000', mutability: 'ReadOnly', dataType: 'decimal', unit: 'W' },
    { component: { name: 'Connector', evse: { id: 1, connectorId: 1 } }, variable: { name: 'ConnectorType' }, value: 'cType2', mutability: 'ReadOnly', dataType: 'string' },
];

function sameName(a, b) {
    return String(a ?? '').toLowerCase() === String(b ?? '').toLowerCase();
}

function findVariable(component, variable) {
    const comps = variables201.filter(v => sameName(v.component.name, component.name)
        && sameName(v.component.instance, component.instance)
        && (!component.evse || (v.component.evse && v.component.evse.id === component.evse.id)));
    if (!comps.length) return { status: 'UnknownComponent' };
    const v = comps.find(c => sameName(c.variable.name, variable.name) && sameName(c.variable.instance, variable.instance));
    if (!v) return { status: 'UnknownVariable' };
    return { status: 'Accepted', v };
}

// ---------------------------------------------------------------------------------------------
// the client

// The official schemas ocpp-rpc ships, with an RFC 3339 date-time: ajv-formats 2.x (ocpp-rpc's
// dependency) lets a date-time without a time zone through, and a space instead of the 'T'; both
// OCPP versions require RFC 3339 date-times (with a time zone).
const RFC3339 = /^(\d{4})-(\d\d)-(\d\d)[Tt](\d\d):(\d\d):(\d\d)(\.\d+)?([Zz]|[+-]\d\d:\d\d)$/;
function rfc3339(str) {
    const m = RFC3339.exec(str);
    if (!m) return false;
    const [, y, mo, d, h, mi, sec] = m.map(Number);
    const day = new Date(Date.UTC(y, mo - 1, d));
    return day.getUTCFullYear() === y && day.getUTCMonth() === mo - 1 && day.getUTCDate() === d
        && h <= 23 && mi <= 59 && sec <= 60;
}

function strictValidator(protocol) {
    const file = { 'ocpp1.6': 'ocpp1_6.json', 'ocpp2.0.1': 'ocpp2_0_1.json', 'ocpp2.1': 'ocpp2_1.json' }[protocol];
    let schemas = require(`ocpp-rpc/lib/schemas/${file}`);
    if (protocol === 'ocpp2.1') {
        // ocpp-rpc 2.2.1 ships the 2.1 schemas under the OCA's ids (urn:XRequest / urn:XResponse)
        // but looks schemas up as urn:X.req / urn:X.conf: give them the ids it looks for.
        schemas = schemas.map((schema) => ({ ...schema, $id: schema.$id.replace(/Request$/, '.req').replace(/Response$/, '.conf') }));
    }
    const validator = createValidator(protocol, schemas);
    if (typeof validator._ajv?.addFormat !== 'function') {
        throw new Error('ocpp-rpc internals changed: cannot tighten the date-time format');
    }
    validator._ajv.addFormat('date-time', { type: 'string', validate: rfc3339 });
    return validator;
}

// The project's contract (DESIGN.md): the CSMS emits timestamps as YYYY-MM-DDTHH:MM:SS.mmmZ.
const DESIGN_TS = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;
const LOOKS_LIKE_TS = /^\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d/;
function timestampsNotInDesignForm(value, path = '', out = []) {
    if (typeof value === 'string') {
        if (LOOKS_LIKE_TS.test(value) && !DESIGN_TS.test(value)) out.push({ path, value });
    } else if (Array.isArray(value)) {
        value.forEach((v, i) => timestampsNotInDesignForm(v, `${path}/${i}`, out));
    } else if (value && typeof value === 'object') {
        for (const [k, v] of Object.entries(value)) timestampsNotInDesignForm(v, `${path}/${k}`, out);
    }
    return out;
}

const client = new RPCClient({
    endpoint: args.url,
    identity: args.id,
    protocols: [args.protocol],
    strictMode: true,              // validate everything in and out against the OCPP schemas
    strictModeValidators: [strictValidator(args.protocol)],
    password: args.password ?? null,
    reconnect: false,              // a dropped connection is a finding, not something to hide
    callTimeoutMs: args.callTimeout * 1000,
    respondWithDetailedErrors: true,
});

// What the CSMS sent that broke a schema (answers to our calls, or its own calls).
client.on('strictValidationFailure', (ev) => {
    if (ev.outbound) {
        // Our own frame: a bug in this script, still a failure.
        violation('own_frame_invalid', { action: ev.method, messageId: ev.messageId, isCall: ev.isCall,
                                         params: ev.params, result: ev.result, error: errInfo(ev.error) });
        return;
    }
    violation('strict', { action: ev.method, messageId: ev.messageId, isCall: ev.isCall,
                          params: ev.params, result: ev.result, error: errInfo(ev.error) });
});

// Frames ocpp-rpc could not even route (bad JSON, unknown message type, answers to unknown ids).
const badFrameTolerance = { active: false, seen: [] };
client.on('badMessage', ({ buffer, error, response }) => {
    const raw = buffer.toString('utf8');
    if (badFrameTolerance.active) {
        badFrameTolerance.seen.push(raw);
        return;
    }
    violation('bad_frame', { raw, error: errInfo(error), ourResponse: response });
});

// Framing rules schemas do not cover.
const serverCallIds = new Set();
const sentSends = new Set();    // ids of our SEND frames (2.1): nothing may come back with one
let serverCallsOpen = 0;
const afterReply = new Map();   // messageId -> function run after our reply to that call was sent

client.on('message', ({ message, outbound }) => {
    if (args.trace) emit({ event: 'frame', dir: outbound ? 'out' : 'in', raw: String(message) });
    if (outbound) return;
    let msg;
    try { msg = JSON.parse(String(message)); } catch { return; }   // badMessage reports it
    if (!Array.isArray(msg)) return;
    if (sentSends.has(msg[1])) {
        violation('send_answered', { frame: msg, note: 'OCPP-J 2.1: a SEND (MessageTypeId 6) is never answered' });
    }
    const body = msg[0] === 2 ? msg[3] : msg[0] === 3 ? msg[2] : undefined;
    const odd = body === undefined ? [] : timestampsNotInDesignForm(body);
    if (odd.length) {
        violation('timestamp_form', { frame: msg, timestamps: odd,
                                      note: 'DESIGN.md: timestamps are emitted as YYYY-MM-DDTHH:MM:SS.mmmZ' });
    }
    if (msg[0] === 2 && typeof msg[1] === 'string') {
        if (serverCallIds.has(msg[1])) {
            violation('duplicate_message_id', { messageId: msg[1], action: msg[2] });
        }
        serverCallIds.add(msg[1]);
        if (msg[1].length > 36) {
            violation('message_id_too_long', { messageId: msg[1], action: msg[2] });
        }
        if (serverCallsOpen > 0) {
            violation('concurrent_server_calls', { messageId: msg[1], action: msg[2],
                                                   note: 'OCPP-J allows one outstanding CALL per direction' });
        }
        serverCallsOpen++;
    } else if (msg[0] === 4) {
        checkCallErrorShape(msg);
    }
});

client.on('response', ({ outbound, payload }) => {
    if (!outbound) return;
    // our CALLRESULT/CALLERROR to a CSMS call has gone out
    serverCallsOpen = Math.max(0, serverCallsOpen - 1);
    const follow = afterReply.get(payload[1]);
    if (follow) {
        afterReply.delete(payload[1]);
        if (payload[0] === 3) {
            // run outside the reply path so the CSMS sees the answer first
            setImmediate(() => follow().catch(err => violation('followup_failed', { error: errInfo(err) })));
        }
    }
});

function checkCallErrorShape(msg) {
    const [, id, code, description, details] = msg;
    const problems = [];
    if (msg.length !== 5) problems.push(`a CALLERROR has 5 elements, got ${msg.length}`);
    if (typeof id !== 'string') problems.push('message id is not a string');
    if (typeof code !== 'string' || !ERROR_CODES.has(code)) problems.push(`error code ${JSON.stringify(code)} is not an ${args.protocol} code`);
    if (typeof description !== 'string') problems.push('error description is not a string');
    if (!V16 && typeof description === 'string' && description.length > 255) problems.push('error description longer than 255');
    if (details === null || typeof details !== 'object' || Array.isArray(details)) problems.push('error details is not a JSON object');
    if (problems.length) violation('callerror_shape', { frame: msg, problems });
}

client.on('disconnect', ({ code, reason }) => {
    emit({ event: 'disconnected', code, reason: String(reason ?? '') });
    if (!station.closingOnPurpose && !station.rebooting) {
        violation('unexpected_disconnect', { code, reason: String(reason ?? '') });
    }
});

client.on('socketError', (err) => emit({ event: 'socket_error', message: err?.message }));

// ---------------------------------------------------------------------------------------------
// our calls

async function call(action, params, { allowError = false } = {}) {
    try {
        const payload = await client.call(action, params);
        emit({ event: 'answer', action, params, payload });
        return payload;
    } catch (err) {
        const info = errInfo(err);
        if (allowError) {
            emit({ event: 'answer_error', action, params, error: info });
            throw err;
        }
        violation('call_failed', { action, params, error: info });
        throw err;
    }
}

function expect(cond, kind, details) {
    if (!cond) violation(kind, details);
    return cond;
}

function checkClock(action, isoTime) {
    const t = Date.parse(isoTime);
    expect(Number.isFinite(t) && Math.abs(t - Date.now()) < 5 * 60 * 1000, 'clock',
           { action, currentTime: isoTime, note: 'CSMS time differs from ours by more than 5 minutes' });
}

// ---------------------------------------------------------------------------------------------
// the meter

function advanceMeter() {
    // Simulated time: each reading during a transaction is one minute of charging at powerW.
    if (station.tx) station.meterWh += Math.max(1, Math.round(station.powerW / 60));
    return station.meterWh;
}

function sampled16(context, { kWh = false } = {}) {
    const wh = station.meterWh;
    const charging = !!station.tx;
    const amps = charging ? (station.powerW / 3 / 230).toFixed(1) : '0.0';
    const values = [
        kWh ? { value: (wh / 1000).toFixed(3), context, measurand: 'Energy.Active.Import.Register', location: 'Outlet', unit: 'kWh' }
            : { value: String(wh), context, measurand: 'Energy.Active.Import.Register', location: 'Outlet', unit: 'Wh' },
        { value: String(charging ? station.powerW : 0), context, measurand: 'Power.Active.Import', unit: 'W' },
    ];
    for (const phase of ['L1', 'L2', 'L3']) {
        values.push({ value: amps, context, measurand: 'Current.Import', phase, unit: 'A' });
    }
    values.push({ value: '230.0', context, measurand: 'Voltage', phase: 'L1-N', unit: 'V' });
    return [{ timestamp: now(), sampledValue: values }];
}

function sampled201(context, { kWh = false } = {}) {
    const wh = station.meterWh;
    const charging = !!station.tx;
    const amps = charging ? Math.round(station.powerW / 3 / 230 * 10) / 10 : 0;
    const values = [
        kWh ? { value: wh / 1000, context, measurand: 'Energy.Active.Import.Register', location: 'Outlet', unitOfMeasure: { unit: 'kWh' } }
            : { value: wh, context, measurand: 'Energy.Active.Import.Register', location: 'Outlet', unitOfMeasure: { unit: 'Wh' } },
        { value: charging ? station.powerW : 0, context, measurand: 'Power.Active.Import', unitOfMeasure: { unit: 'W' } },
    ];
    for (const phase of ['L1', 'L2', 'L3']) {
        values.push({ value: amps, context, measurand: 'Current.Import', phase, unitOfMeasure: { unit: 'A' } });
    }
    values.push({ value: 230, context, measurand: 'Voltage', phase: 'L1-N', unitOfMeasure: { unit: 'V' } });
    return [{ timestamp: now(), sampledValue: values }];
}

// ---------------------------------------------------------------------------------------------
// station-initiated messages, per version

async function boot(reason = 'PowerUp') {
    const params = V16
        ? { chargePointVendor: 'StrictVendor', chargePointModel: 'ocpp-rpc-strict', chargePointSerialNumber: `SN-${args.id}`.slice(0, 25),
            chargeBoxSerialNumber: `CB-${args.id}`.slice(0, 25), firmwareVersion: '1.0.0', meterType: 'StrictMeter', meterSerialNumber: 'M-1' }
        : { reason, chargingStation: { vendorName: 'StrictVendor', model: 'ocpp-rpc-strict', serialNumber: `SN-${args.id}`.slice(0, 25),
                                       firmwareVersion: '1.0.0', modem: { iccid: '8931000000000000001', imsi: '204080000000001' } } };
    const answer = await call('BootNotification', params);
    checkClock('BootNotification', answer.currentTime);
    if (!(args.allowPending && answer.status === 'Pending')) {
        expect(answer.status === 'Accepted', 'boot_not_accepted', { answer });
    }
    expect(answer.status !== 'Accepted' || answer.interval > 0, 'boot_interval',
           { answer, note: 'an Accepted boot should give a heartbeat interval > 0' });
    station.booted = answer.status === 'Accepted';
    emit({ event: 'boot', status: answer.status, interval: answer.interval });
    return answer;
}

// Boot until Accepted: a Pending station retries after the interval it was given, or at once
// when the CSMS triggers a BootNotification (sending nothing else meanwhile, as the spec says).
let bootTrigger = null;
async function bootUntilAccepted(reason) {
    for (;;) {
        const answer = await boot(reason);
        if (answer.status === 'Accepted') return answer;
        if (answer.status !== 'Pending' || !args.allowPending) throw new Error(`boot ${answer.status}`);
        await new Promise((resolve) => {
            const t = setTimeout(resolve, Math.max(1, answer.interval || 10) * 1000);
            bootTrigger = () => { clearTimeout(t); bootTrigger = null; resolve(); };
        });
        if (!V16) reason = 'Triggered';
    }
}

async function heartbeat() {
    const answer = await call('Heartbeat', {});
    checkClock('Heartbeat', answer.currentTime);
    return answer;
}

async function statusNotification(evseId, status) {
    if (evseId !== 0) station.evses[evseId].status = status;
    if (V16) {
        return call('StatusNotification', { connectorId: evseId, errorCode: 'NoError', status, timestamp: now() });
    }
    const map = { Preparing: 'Occupied', Charging: 'Occupied', SuspendedEV: 'Occupied', SuspendedEVSE: 'Occupied',
                  Finishing: 'Occupied', Available: 'Available', Unavailable: 'Unavailable', Faulted: 'Faulted',
                  Occupied: 'Occupied', Reserved: 'Reserved' };
    return call('StatusNotification', { timestamp: now(), connectorStatus: map[status], evseId, connectorId: 1 });
}

async function allStatuses() {
    if (V16) await statusNotification(0, 'Available');
    for (const id of Object.keys(station.evses)) {
        const evse = station.evses[id];
        await statusNotification(Number(id), evse.operative ? (station.tx ? 'Charging' : 'Available') : 'Unavailable');
    }
}

async function authorize(idTag) {
    const params = V16 ? { idTag } : { idToken: { idToken: idTag, type: 'ISO14443' } };
    const answer = await call('Authorize', params);
    const status = V16 ? answer.idTagInfo.status : answer.idTokenInfo.status;
    return status;
}

async function startTransaction({ idTag, evseId = 1, remoteStartId = null, tokenType = 'ISO14443' }) {
    const meterStart = station.meterWh;
    if (V16) {
        await statusNotification(evseId, 'Preparing');
        const answer = await call('StartTransaction', { connectorId: evseId, idTag, meterStart, timestamp: now() });
        expect(answer.idTagInfo.status === 'Accepted', 'start_not_accepted', { answer });
        station.tx = { id: answer.transactionId, evseId, idTag, meterStart, seqNo: 0, startedAt: Date.now() };
        await statusNotification(evseId, 'Charging');
    } else {
        station.txCounter++;
        const txId = `${args.id}-${Date.now().toString(36)}-${station.txCounter}`.slice(-36);
        const begin = sampled201('Transaction.Begin');
        station.tx = { id: txId, evseId, idTag, meterStart, seqNo: 0, startedAt: Date.now(), remoteStartId };
        const info = { transactionId: txId, chargingState: 'EVConnected' };
        if (remoteStartId != null) info.remoteStartId = remoteStartId;
        const answer = await call('TransactionEvent', {
            eventType: 'Started', timestamp: now(), triggerReason: remoteStartId != null ? 'RemoteStart' : 'Authorized',
            seqNo: station.tx.seqNo++, transactionInfo: info, idToken: { idToken: idTag, type: tokenType },
            evse: { id: evseId, connectorId: 1 }, meterValue: begin,
        });
        if (answer.idTokenInfo) {
            expect(answer.idTokenInfo.status === 'Accepted', 'start_not_accepted', { answer });
        }
        await statusNotification(evseId, 'Occupied');
        await call('TransactionEvent', {
            eventType: 'Updated', timestamp: now(), triggerReason: 'ChargingStateChanged', seqNo: station.tx.seqNo++,
            transactionInfo: { transactionId: txId, chargingState: 'Charging' }, evse: { id: evseId, connectorId: 1 },
        });
    }
    emit({ event: 'tx_started', transactionId: station.tx.id, idTag, meterStart, evseId });
}

async function meterValues({ kWh = false } = {}) {
    const tx = station.tx;
    advanceMeter();
    if (V16) {
        const p = { connectorId: tx ? tx.evseId : 1, meterValue: sampled16('Sample.Periodic', { kWh }) };
        if (tx) p.transactionId = tx.id;
        return call('MeterValues', p);
    }
    if (tx) {
        return call('TransactionEvent', {
            eventType: 'Updated', timestamp: now(), triggerReason: 'MeterValuePeriodic', seqNo: tx.seqNo++,
            transactionInfo: { transactionId: tx.id, chargingState: 'Charging' },
            meterValue: sampled201('Sample.Periodic', { kWh }),
        });
    }
    return call('MeterValues', { evseId: 1, meterValue: sampled201('Sample.Periodic', { kWh }) });
}

async function stopTransaction(reason = 'Local') {
    const tx = station.tx;
    if (!tx) return;
    // a TxProfile lasts as long as its transaction
    station.profiles = station.profiles.filter(x => !(x.evseId === tx.evseId && x.profile.chargingProfilePurpose === 'TxProfile'));
    await sleep(20);
    advanceMeter();
    const meterStop = station.meterWh;
    if (V16) {
        const p = { transactionId: tx.id, meterStop, timestamp: now(), reason,
                    transactionData: sampled16('Transaction.End') };
        if (reason === 'Local') p.idTag = tx.idTag;
        const answer = await call('StopTransaction', p);
        if (answer.idTagInfo) expect(answer.idTagInfo.status === 'Accepted', 'stop_idtag_not_accepted', { answer });
        station.tx = null;
        await statusNotification(tx.evseId, 'Finishing');
        await statusNotification(tx.evseId, 'Available');
    } else {
        const triggers = { Local: 'StopAuthorized', Remote: 'RemoteStop', SoftReset: 'ResetCommand',
                           ImmediateReset: 'ResetCommand' };
        const p = {
            eventType: 'Ended', timestamp: now(), triggerReason: triggers[reason] ?? 'StopAuthorized', seqNo: tx.seqNo++,
            transactionInfo: { transactionId: tx.id, chargingState: 'Idle', stoppedReason: reason,
                               timeSpentCharging: Math.round((Date.now() - tx.startedAt) / 1000) },
            evse: { id: tx.evseId, connectorId: 1 },
            meterValue: sampled201('Transaction.End'),
        };
        if (reason === 'Local') p.idToken = { idToken: tx.idTag, type: 'ISO14443' };
        const answer = await call('TransactionEvent', p);
        if (answer.idTokenInfo) expect(answer.idTokenInfo.status === 'Accepted', 'stop_idtoken_not_accepted', { answer });
        station.tx = null;
        await statusNotification(tx.evseId, 'Available');
    }
    emit({ event: 'tx_stopped', transactionId: tx.id, reason, meterStart: tx.meterStart, meterStop,
           energyWh: meterStop - tx.meterStart });
}

// ---------------------------------------------------------------------------------------------
// answering the CSMS

function handle(action, fn) {
    client.handle(action, async ({ messageId, params }) => {
        emit({ event: 'call', action, id: messageId, params });
        const ctx = { then: (f) => afterReply.set(messageId, f) };
        const payload = await fn(params, ctx);
        emit({ event: 'reply', action, id: messageId, payload });
        return payload;
    });
}

client.handle(async ({ method, messageId, params }) => {
    emit({ event: 'call', action: method, id: messageId, params, unhandled: true });
    throw createRPCError('NotImplemented', `this station does not implement ${method}`);
});

async function reboot(reason) {
    station.rebooting = true;
    if (station.tx) await stopTransaction(V16 ? (reason === 'Hard' ? 'HardReset' : 'SoftReset') : (reason === 'Immediate' ? 'ImmediateReset' : 'SoftReset'));
    await client.close({ code: 1000, reason: 'rebooting', awaitPending: true });
    await sleep(300);
    await client.connect();
    emit({ event: 'connected', protocol: client.protocol, after: 'reboot' });
    station.rebooting = false;
    await boot(V16 ? undefined : 'RemoteReset');
    await allStatuses();
    emit({ event: 'rebooted', kind: reason });
}

function profileOf(params) {
    return V16 ? { evseId: params.connectorId, profile: params.csChargingProfiles }
               : { evseId: params.evseId, profile: params.chargingProfile };
}

function profileId(p) {
    return V16 ? p.chargingProfileId : p.id;
}

function compositeLimit(evseId, unit) {
    const defaults = { A: 32, W: 22000 };
    let limit = defaults[unit];
    for (const { evseId: e, profile } of station.profiles) {
        if (e !== 0 && e !== evseId) continue;
        const sched = V16 ? profile.chargingSchedule : profile.chargingSchedule[0];
        if (sched.chargingRateUnit !== unit) continue;
        const first = sched.chargingSchedulePeriod[0];
        if (first && first.limit < limit) limit = first.limit;
    }
    return Math.round(limit * 10) / 10;
}

async function sendReport(requestId, items) {
    const perMessage = 5;
    for (let i = 0, seqNo = 0; i < items.length; i += perMessage, seqNo++) {
        const chunk = items.slice(i, i + perMessage);
        const reportData = chunk.map(v => {
            const chars = { dataType: v.dataType, supportsMonitoring: false };
            if (v.unit) chars.unit = v.unit;
            return { component: v.component, variable: v.variable,
                     variableAttribute: [{ type: 'Actual', value: v.value, mutability: v.mutability,
                                           persistent: true, constant: false }],
                     variableCharacteristics: chars };
        });
        const tbc = i + perMessage < items.length;
        await call('NotifyReport', { requestId, generatedAt: now(), seqNo, ...(tbc ? { tbc } : {}), reportData });
    }
    emit({ event: 'report_sent', requestId, items: items.length });
}

async function getLog(p, ctx) {
    // GetLog (2.0.1, and the 1.6 security extension): the upload is told in LogStatusNotifications
    ctx.then(async () => {
        for (const status of ['Uploading', 'Uploaded']) {
            await sleep(50);
            await call('LogStatusNotification', { status, requestId: p.requestId });
        }
        emit({ event: 'log_uploaded', requestId: p.requestId, logType: p.logType, log: p.log });
    });
    return { status: 'Accepted', filename: `${p.logType === 'SecurityLog' ? 'security' : 'log'}-${args.id}.txt` };
}

function registerHandlers() {
    // -- common -------------------------------------------------------------------------------
    handle('Reset', async (p, ctx) => {
        const kind = p.type;
        if (!V16 && p.evseId && !station.evses[p.evseId]) return { status: 'Rejected', statusInfo: { reasonCode: 'UnknownEvse' } };
        if (!V16 && kind === 'OnIdle' && station.tx) return { status: 'Scheduled' };
        ctx.then(() => reboot(kind));
        return { status: 'Accepted' };
    });

    handle('UnlockConnector', async (p) => {
        if (V16) return { status: station.evses[p.connectorId] ? 'Unlocked' : 'NotSupported' };
        if (!station.evses[p.evseId] || p.connectorId !== 1) return { status: 'UnknownConnector' };
        if (station.tx && station.tx.evseId === p.evseId) return { status: 'OngoingAuthorizedTransaction' };
        return { status: 'Unlocked' };
    });

    handle('ChangeAvailability', async (p, ctx) => {
        const operative = (V16 ? p.type : p.operationalStatus) === 'Operative';
        const evseId = V16 ? p.connectorId : (p.evse ? p.evse.id : 0);
        if (evseId !== 0 && !station.evses[evseId]) return { status: 'Rejected' };
        const ids = evseId === 0 ? Object.keys(station.evses).map(Number) : [evseId];
        const busy = station.tx && ids.includes(station.tx.evseId) && !operative;
        for (const id of ids) station.evses[id].operative = operative;
        if (busy) return { status: 'Scheduled' };
        ctx.then(async () => {
            for (const id of ids) await statusNotification(id, operative ? 'Available' : 'Unavailable');
            emit({ event: 'status', evses: ids, operative });
        });
        return { status: 'Accepted' };
    });

    handle('ClearCache', async () => ({ status: 'Accepted' }));

    handle('DataTransfer', async (p) => {
        if (p.vendorId !== args.vendor) return { status: 'UnknownVendorId' };
        if (p.messageId && p.messageId !== 'echo') return { status: 'UnknownMessageId' };
        return p.data === undefined ? { status: 'Accepted' } : { status: 'Accepted', data: p.data };
    });

    handle('SetChargingProfile', async (p) => {
        const { evseId, profile } = profileOf(p);
        const purpose = profile.chargingProfilePurpose;
        if (evseId !== 0 && !station.evses[evseId]) return { status: 'Rejected' };
        if (purpose === 'TxProfile' && (!station.tx || station.tx.evseId !== evseId)) {
            return V16 ? { status: 'Rejected' } : { status: 'Rejected', statusInfo: { reasonCode: 'TxNotFound' } };
        }
        const maxPurpose = V16 ? 'ChargePointMaxProfile' : 'ChargingStationMaxProfile';
        if (purpose === maxPurpose && evseId !== 0) return { status: 'Rejected' };
        station.profiles = station.profiles.filter(x => profileId(x.profile) !== profileId(profile)
            && !(x.evseId === evseId && x.profile.stackLevel === profile.stackLevel
                 && x.profile.chargingProfilePurpose === purpose));
        station.profiles.push({ evseId, profile });
        return { status: 'Accepted' };
    });

    handle('ClearChargingProfile', async (p) => {
        const before = station.profiles.length;
        station.profiles = station.profiles.filter(({ evseId, profile }) => {
            if (V16) {
                if (p.id != null) return profileId(profile) !== p.id;
                if (p.connectorId != null && p.connectorId !== evseId) return true;
                if (p.chargingProfilePurpose && p.chargingProfilePurpose !== profile.chargingProfilePurpose) return true;
                if (p.stackLevel != null && p.stackLevel !== profile.stackLevel) return true;
                return false;
            }
            if (p.chargingProfileId != null) return profileId(profile) !== p.chargingProfileId;
            const c = p.chargingProfileCriteria ?? {};
            if (c.evseId != null && c.evseId !== evseId) return true;
            if (c.chargingProfilePurpose && c.chargingProfilePurpose !== profile.chargingProfilePurpose) return true;
            if (c.stackLevel != null && c.stackLevel !== profile.stackLevel) return true;
            return false;
        });
        return { status: station.profiles.length < before ? 'Accepted' : 'Unknown' };
    });

    handle('GetCompositeSchedule', async (p) => {
        const evseId = V16 ? p.connectorId : p.evseId;
        if (evseId !== 0 && !station.evses[evseId]) return { status: 'Rejected' };
        const unit = p.chargingRateUnit ?? 'A';
        const start = now();
        const periods = [{ startPeriod: 0, limit: compositeLimit(evseId, unit), numberPhases: 3 }];
        if (V16) {
            return { status: 'Accepted', connectorId: evseId, scheduleStart: start,
                     chargingSchedule: { duration: p.duration, startSchedule: start, chargingRateUnit: unit,
                                         chargingSchedulePeriod: periods } };
        }
        return { status: 'Accepted', schedule: { evseId, duration: p.duration, scheduleStart: start,
                                                 chargingRateUnit: unit, chargingSchedulePeriod: periods } };
    });

    handle('TriggerMessage', async (p, ctx) => {
        const what = p.requestedMessage;
        const evseId = V16 ? p.connectorId : p.evse?.id;
        if (evseId != null && evseId !== 0 && !station.evses[evseId]) return { status: 'Rejected' };
        const actions = {
            BootNotification: async () => {
                if (bootTrigger) bootTrigger();          // a Pending station: the boot loop re-boots
                else await boot(V16 ? undefined : 'Triggered');
            },
            Heartbeat: () => heartbeat(),
            StatusNotification: async () => {
                if (evseId) await statusNotification(evseId, station.evses[evseId].status);
                else await allStatuses();
            },
            MeterValues: () => V16 ? call('MeterValues', { connectorId: evseId ?? 1, meterValue: sampled16('Trigger'),
                                                           ...(station.tx ? { transactionId: station.tx.id } : {}) })
                                   : call('MeterValues', { evseId: evseId ?? 1, meterValue: sampled201('Trigger') }),
            FirmwareStatusNotification: () => call('FirmwareStatusNotification', { status: 'Idle' }),
        };
        if (V16) {
            actions.DiagnosticsStatusNotification = () => call('DiagnosticsStatusNotification', { status: 'Idle' });
        } else {
            actions.LogStatusNotification = () => call('LogStatusNotification', { status: 'Idle' });
            if (station.tx) {
                actions.TransactionEvent = () => call('TransactionEvent', {
                    eventType: 'Updated', timestamp: now(), triggerReason: 'Trigger', seqNo: station.tx.seqNo++,
                    transactionInfo: { transactionId: station.tx.id, chargingState: 'Charging' },
                    meterValue: sampled201('Trigger'),
                });
            }
        }
        const run = actions[what];
        if (!run) return { status: 'NotImplemented' };
        // OCPP 2.0.1 F06.FR.17: a station already Accepted rejects a triggered BootNotification.
        if (!V16 && what === 'BootNotification' && station.booted && !bootTrigger) return { status: 'Rejected' };
        ctx.then(async () => { await run(); emit({ event: 'triggered', message: what }); });
        return { status: 'Accepted' };
    });

    handle('GetLocalListVersion', async () => (V16 ? { listVersion: station.localListVersion }
                                                     : { versionNumber: station.localListVersion }));
    handle('SendLocalList', async (p) => {
        station.localListVersion = V16 ? p.listVersion : p.versionNumber;
        return { status: 'Accepted' };
    });

    handle('ReserveNow', async (p) => {
        const id = V16 ? p.reservationId : p.id;
        station.reservations.set(id, p);
        return { status: 'Accepted' };
    });
    handle('CancelReservation', async (p) => ({ status: station.reservations.delete(p.reservationId) ? 'Accepted' : 'Rejected' }));

    if (V16) {
        handle('RemoteStartTransaction', async (p, ctx) => {
            const evseId = p.connectorId ?? 1;
            if (station.tx || !station.evses[evseId] || !station.evses[evseId].operative) return { status: 'Rejected' };
            if (p.chargingProfile && p.chargingProfile.chargingProfilePurpose !== 'TxProfile') return { status: 'Rejected' };
            if (p.chargingProfile) station.profiles.push({ evseId, profile: p.chargingProfile });
            ctx.then(async () => {
                if (config16.get('AuthorizeRemoteTxRequests')[0] === 'true') {
                    const status = await authorize(p.idTag);
                    if (!expect(status === 'Accepted', 'remote_start_token_rejected', { idTag: p.idTag, status })) return;
                }
                await startTransaction({ idTag: p.idTag, evseId });
                await meterValues();
            });
            return { status: 'Accepted' };
        });

        handle('RemoteStopTransaction', async (p, ctx) => {
            if (!station.tx || station.tx.id !== p.transactionId) return { status: 'Rejected' };
            ctx.then(async () => { await meterValues(); await stopTransaction('Remote'); });
            return { status: 'Accepted' };
        });

        handle('GetConfiguration', async (p) => {
            const keys = p.key && p.key.length ? p.key : [...config16.keys()];
            const configurationKey = [];
            const unknownKey = [];
            for (const k of keys) {
                const entry = config16.get(k);
                if (entry) configurationKey.push({ key: k, readonly: entry[1], value: entry[0] });
                else unknownKey.push(k);
            }
            const out = { configurationKey };
            if (unknownKey.length) out.unknownKey = unknownKey;
            return out;
        });

        handle('ChangeConfiguration', async (p) => {
            if (p.key === 'AuthorizationKey') {  // write-only (1.6 security whitepaper): hex of 16-20 bytes
                if (!/^([0-9A-Fa-f]{2}){16,20}$/.test(p.value)) return { status: 'Rejected' };
                emit({ event: 'password_changed', password: Buffer.from(p.value, 'hex').toString('utf8') });
                return { status: 'Accepted' };
            }
            const entry = config16.get(p.key);
            if (!entry) return { status: 'NotSupported' };
            if (entry[1]) return { status: 'Rejected' };
            if (/Interval$/.test(p.key) && !/^\d+$/.test(p.value)) return { status: 'Rejected' };
            entry[0] = p.value;
            return { status: 'Accepted' };
        });

        handle('GetDiagnostics', async () => ({ fileName: `diag-${args.id}.log` }));
        if (args.securityExtension) handle('GetLog', getLog);
        handle('UpdateFirmware', async () => ({}));
    } else {
        handle('RequestStartTransaction', async (p, ctx) => {
            const evseId = p.evseId ?? 1;
            if (station.tx || !station.evses[evseId] || !station.evses[evseId].operative) return { status: 'Rejected' };
            if (p.chargingProfile && p.chargingProfile.chargingProfilePurpose !== 'TxProfile') return { status: 'Rejected' };
            if (p.chargingProfile) station.profiles.push({ evseId, profile: p.chargingProfile });
            ctx.then(async () => {
                const authorizeFirst = findVariable({ name: 'AuthCtrlr' }, { name: 'AuthorizeRemoteStart' }).v.value === 'true';
                if (authorizeFirst) {
                    const status = await authorize(p.idToken.idToken);
                    if (!expect(status === 'Accepted', 'remote_start_token_rejected', { idToken: p.idToken, status })) return;
                }
                await startTransaction({ idTag: p.idToken.idToken, evseId, remoteStartId: p.remoteStartId,
                                         tokenType: p.idToken.type });
                await meterValues();
            });
            return { status: 'Accepted' };
        });

        handle('RequestStopTransaction', async (p, ctx) => {
            if (!station.tx || station.tx.id !== p.transactionId) return { status: 'Rejected' };
            ctx.then(async () => { await meterValues(); await stopTransaction('Remote'); });
            return { status: 'Accepted' };
        });

        handle('GetVariables', async (p) => ({
            getVariableResult: p.getVariableData.map(({ attributeType, component, variable }) => {
                const found = findVariable(component, variable);
                const r = { attributeStatus: found.status, component, variable };
                if (attributeType) r.attributeType = attributeType;
                if (found.status === 'Accepted') {
                    if (attributeType && attributeType !== 'Actual') r.attributeStatus = 'NotSupportedAttributeType';
                    else r.attributeValue = found.v.value;
                }
                return r;
            }),
        }));

        handle('SetVariables', async (p) => ({
            setVariableResult: p.setVariableData.map(({ attributeType, attributeValue, component, variable }) => {
                if (sameName(component.name, 'SecurityCtrlr') && sameName(variable.name, 'BasicAuthPassword')) {
                    // write-only, kept out of the reported device model: 16-40 characters (A00.FR.205)
                    const ok = attributeValue.length >= 16 && attributeValue.length <= 40;
                    if (ok) emit({ event: 'password_changed', password: attributeValue });
                    return { attributeStatus: ok ? 'Accepted' : 'Rejected', component, variable };
                }
                const found = findVariable(component, variable);
                const r = { attributeStatus: found.status, component, variable };
                if (attributeType) r.attributeType = attributeType;
                if (found.status !== 'Accepted') return r;
                if (attributeType && attributeType !== 'Actual') r.attributeStatus = 'NotSupportedAttributeType';
                else if (found.v.mutability === 'ReadOnly') r.attributeStatus = 'Rejected';
                else if (found.v.dataType === 'integer' && !/^-?\d+$/.test(attributeValue)) r.attributeStatus = 'Rejected';
                else found.v.value = attributeValue;
                return r;
            }),
        }));

        handle('GetReport', async (p, ctx) => {
            // B08: the variables of the components (and variables) asked for that meet the criteria;
            // this station has no problems, and everything it has is available, enabled and active
            const wanted = p.componentVariable ?? [];
            const items = (p.componentCriteria ?? []).includes('Problem') && p.componentCriteria.length === 1 ? []
                : variables201.filter(v => !wanted.length || wanted.some(w => sameName(w.component.name, v.component.name)
                    && (!w.variable || sameName(w.variable.name, v.variable.name))));
            if (!items.length) return { status: 'EmptyResultSet' };
            ctx.then(() => sendReport(p.requestId, items));
            return { status: 'Accepted' };
        });

        handle('GetBaseReport', async (p, ctx) => {
            const items = p.reportBase === 'ConfigurationInventory'
                ? variables201.filter(v => v.mutability !== 'ReadOnly') : variables201;
            if (!items.length) return { status: 'EmptyResultSet' };
            ctx.then(() => sendReport(p.requestId, items));
            return { status: 'Accepted' };
        });

        handle('GetTransactionStatus', async (p) => {
            station.txStatusAsked.push(p.transactionId);
            const out = { messagesInQueue: false };
            if (p.transactionId) out.ongoingIndicator = !!station.tx && station.tx.id === p.transactionId;
            return out;
        });
        handle('SetNetworkProfile', async (p) => {
            // B09: slots 0-3; a profile below the one this station connects with is refused (A05)
            const current = Number(findVariable({ name: 'SecurityCtrlr' }, { name: 'SecurityProfile' }).v.value);
            if (p.configurationSlot > 3 || p.connectionData.securityProfile < current) return { status: 'Rejected' };
            station.networkProfiles[p.configurationSlot] = p.connectionData;
            emit({ event: 'network_profile', slot: p.configurationSlot, profile: p.connectionData });
            return { status: 'Accepted' };
        });
        handle('GetChargingProfiles', async (p, ctx) => {
            // K09: the matching profiles, one ReportChargingProfiles per EVSE (the last without tbc)
            const c = p.chargingProfile ?? {};
            const found = station.profiles.filter(({ evseId, profile }) =>
                (p.evseId == null || p.evseId === evseId)
                && (!c.chargingProfilePurpose || c.chargingProfilePurpose === profile.chargingProfilePurpose)
                && (c.stackLevel == null || c.stackLevel === profile.stackLevel)
                && (!c.chargingProfileId || c.chargingProfileId.includes(profile.id))
                && (!c.chargingLimitSource || c.chargingLimitSource.includes('CSO')));
            if (!found.length) return { status: 'NoProfiles' };
            const evses = [...new Set(found.map(f => f.evseId))];
            ctx.then(async () => {
                for (let i = 0; i < evses.length; i++) {
                    const tbc = i + 1 < evses.length;
                    await call('ReportChargingProfiles', {
                        requestId: p.requestId, chargingLimitSource: 'CSO', evseId: evses[i], ...(tbc ? { tbc } : {}),
                        chargingProfile: found.filter(f => f.evseId === evses[i]).map(f => f.profile) });
                }
                emit({ event: 'profiles_reported', requestId: p.requestId, count: found.length });
            });
            return { status: 'Accepted' };
        });
        handle('SetDisplayMessage', async (p) => {
            station.displayMessages.set(p.message.id, p.message);
            return { status: 'Accepted' };
        });
        handle('GetDisplayMessages', async (p, ctx) => {
            const messages = [...station.displayMessages.values()]
                .filter(m => !p.id || p.id.includes(m.id))
                .filter(m => !p.priority || m.priority === p.priority)
                .filter(m => !p.state || m.state === p.state);
            if (!messages.length) return { status: 'Unknown' };
            ctx.then(async () => {
                for (let i = 0; i < messages.length; i++) {
                    const tbc = i + 1 < messages.length;
                    await call('NotifyDisplayMessages', { requestId: p.requestId, ...(tbc ? { tbc } : {}),
                                                          messageInfo: [messages[i]] });
                }
            });
            return { status: 'Accepted' };
        });
        handle('ClearDisplayMessage', async (p) => (
            { status: station.displayMessages.delete(p.id) ? 'Accepted' : 'Unknown' }));
        handle('GetLog', getLog);
        handle('UpdateFirmware', async () => ({ status: 'Accepted' }));
    }
    if (V21) {
        // tariffs the station calculates costs with: the default per EVSE (0: all), kept by id
        handle('SetDefaultTariff', async (p) => {
            const t = p.tariff;
            if ([...station.tariffs.values()].some(x => x.tariff.tariffId === t.tariffId && x.evseId !== p.evseId
                                                      && x.tariff.currency !== t.currency)) {
                return { status: 'DuplicateTariffId' };
            }
            station.tariffs.set(`${p.evseId}:${t.tariffId}`, { evseId: p.evseId, tariff: t });
            return { status: 'Accepted' };
        });
        handle('GetTariffs', async (p) => {
            const held = [...station.tariffs.values()].filter(x => !p.evseId || x.evseId === 0 || x.evseId === p.evseId);
            if (!held.length) return { status: 'NoTariff' };
            return { status: 'Accepted', tariffAssignments: held.map(x => ({
                tariffId: x.tariff.tariffId, tariffKind: 'DefaultTariff', ...(x.evseId ? { evseIds: [x.evseId] } : {}) })) };
        });
        handle('ClearTariffs', async (p) => {
            const results = [];
            for (const [key, x] of [...station.tariffs.entries()]) {
                if (p.tariffIds && !p.tariffIds.includes(x.tariff.tariffId)) continue;
                if (p.evseId !== undefined && x.evseId !== p.evseId) continue;
                station.tariffs.delete(key);
                results.push({ tariffId: x.tariff.tariffId, status: 'Accepted' });
            }
            return { clearTariffsResult: results.length ? results : [{ status: 'NoTariff' }] };
        });
        handle('ChangeTransactionTariff', async (p) => {
            if (!station.tx || station.tx.id !== p.transactionId) return { status: 'TxNotFound' };
            station.tx.tariff = p.tariff;
            return { status: 'Accepted' };
        });
        // what else the CSMS may tell a 2.1 station
        handle('AFRRSignal', async (p) => ({ status: p.signal >= -1 && p.signal <= 1 ? 'Accepted' : 'Rejected' }));
        handle('UpdateDynamicSchedule', async (p) => {
            const held = station.profiles.find(x => profileId(x.profile) === p.chargingProfileId);
            if (!held || held.profile.chargingProfileKind !== 'Dynamic') {
                return { status: 'Rejected', statusInfo: { reasonCode: 'UnknownProfile' } };
            }
            held.update = p.scheduleUpdate;
            return { status: 'Accepted' };
        });
        const txNotFound = { status: 'Rejected', statusInfo: { reasonCode: 'TxNotFound' } };
        handle('UsePriorityCharging', async (p, ctx) => {
            if (!station.tx || station.tx.id !== p.transactionId) return txNotFound;
            // the station reports the switch once it is done (NotifyPriorityCharging)
            ctx.then(async () => { await call('NotifyPriorityCharging', { transactionId: p.transactionId,
                                                                          activated: p.activate }); });
            return { status: 'Accepted' };
        });
        handle('NotifyAllowedEnergyTransfer', async (p) => {
            if (!station.tx || station.tx.id !== p.transactionId) return txNotFound;
            station.tx.allowedEnergyTransfer = p.allowedEnergyTransfer;
            return { status: 'Accepted' };
        });
        handle('NotifyWebPaymentStarted', async () => ({}));
    }
}

// ---------------------------------------------------------------------------------------------
// the scripted walk

async function walk() {
    await bootUntilAccepted('PowerUp');
    await allStatuses();
    await heartbeat();
    const status = await authorize(args.token);
    expect(status === 'Accepted', 'authorize_not_accepted', { token: args.token, status });
    await startTransaction({ idTag: args.token, evseId: 1 });
    for (let i = 0; i < args.samples; i++) {
        await sleep(150);
        await meterValues({ kWh: i === 1 });   // one sample in kWh: the CSMS must scale it
    }
    if (!V16) {
        // A 2.0.1 MeterValues (not a TransactionEvent) during the transaction.
        await call('MeterValues', { evseId: 1, meterValue: sampled201('Sample.Clock') });
    }
    await sleep(100);
    await stopTransaction('Local');
    const dt = V16 ? { vendorId: args.vendor, messageId: 'hello', data: 'strict station' }
                   : { vendorId: args.vendor, messageId: 'hello', data: { text: 'strict station' } };
    await call('DataTransfer', dt);
    if (V21) await periodicEventStream();
    emit({ event: 'walk_done' });
}

// OCPP 2.1: open a periodic event stream, send its data in a SEND (MessageTypeId 6, validated
// here against the 2.1 schema as ocpp-rpc does not send SENDs itself), then close it. The
// Heartbeat after the SEND is answered only once the CSMS has read the SEND (frames are handled
// in order), so by its answer an answer to the SEND would have come.
async function periodicEventStream() {
    const streamId = 7;
    const opened = await call('OpenPeriodicEventStream', { constantStreamData: {
        id: streamId, variableMonitoringId: 1, params: { interval: 60, values: 2 } } });
    expect(opened.status === 'Accepted', 'stream_not_accepted', { opened });
    const id = `send-${Date.now().toString(36)}`;
    const params = { id: streamId, pending: 0, basetime: now(), data: [{ t: 0, v: '230.1' }, { t: 1.5, v: '229.8' }] };
    const validator = client._strictValidators.get(args.protocol);
    try {
        validator.validate('urn:NotifyPeriodicEventStream', params);
    } catch (err) {
        violation('own_frame_invalid', { action: 'NotifyPeriodicEventStream', params, error: errInfo(err) });
    }
    sentSends.add(id);
    client.sendRaw(JSON.stringify([6, id, 'NotifyPeriodicEventStream', params]));
    emit({ event: 'send', action: 'NotifyPeriodicEventStream', id, params });
    await heartbeat();
    await sleep(200);
    await call('ClosePeriodicEventStream', { id: streamId });
    emit({ event: 'stream_done', sendId: id });
}

// ---------------------------------------------------------------------------------------------
// --bad: deliberately broken frames; the CSMS must answer each with the CALLERROR the spec names

function badCases() {
    const f = (o) => JSON.stringify(o);
    const fmt = V16 ? 'FormationViolation' : 'FormatViolation';
    const occ = V16 ? ['OccurenceConstraintViolation', 'OccurrenceConstraintViolation'] : ['OccurrenceConstraintViolation'];
    const rpc = V16 ? ['FormationViolation', 'ProtocolError'] : ['RpcFrameworkError'];
    const longVendor = 'V'.repeat(V16 ? 21 : 51);
    const boot = V16 ? (extra) => ({ chargePointVendor: 'v', chargePointModel: 'm', ...extra })
                     : (extra) => ({ reason: 'PowerUp', chargingStation: { vendorName: 'v', model: 'm', ...extra } });
    const otherVersionAction = V16 ? 'TransactionEvent' : 'StartTransaction';
    const csmsOnlyAction = V16 ? ['Reset', { type: 'Soft' }] : ['Reset', { type: 'Immediate' }];
    const badStatus = V16 ? { connectorId: 1, errorCode: 'NoError', status: 'Flying' }
                          : { timestamp: now(), connectorStatus: 'Flying', evseId: 1, connectorId: 1 };
    const badDate = V16 ? { connectorId: 1, errorCode: 'NoError', status: 'Available', timestamp: 'yesterday' }
                        : { timestamp: 'yesterday', connectorStatus: 'Available', evseId: 1, connectorId: 1 };
    const missing = V16 ? { chargePointVendor: 'v' } : { reason: 'PowerUp', chargingStation: { vendorName: 'v' } };
    const wrongType = V16 ? { chargePointVendor: 5, chargePointModel: 'm' }
                          : { reason: 'PowerUp', chargingStation: { vendorName: 5, model: 'm' } };
    return [
        { name: 'not_json', raw: '[2,"bad-json","Heartbeat",{', id: '-1', codes: [...rpc, fmt] },
        { name: 'not_an_array', raw: f({ hello: 'world' }), id: '-1', codes: [...rpc, fmt] },
        { name: 'empty_array', raw: '[]', id: '-1', codes: [...rpc, fmt] },
        { name: 'id_not_string', raw: f([2, 42, 'Heartbeat', {}]), id: '-1', codes: [...rpc, fmt] },
        { name: 'type_not_int', raw: f(['2', 'bad-typestr', 'Heartbeat', {}]), id: ['-1', 'bad-typestr'], codes: [...rpc, fmt] },
        { name: 'call_too_short', raw: f([2, 'bad-short', 'Heartbeat']), id: 'bad-short', codes: [...rpc, fmt, 'ProtocolError'] },
        { name: 'unknown_message_type', raw: f([7, 'bad-mtype', 'Heartbeat', {}]), id: 'bad-mtype',
          codes: V16 ? [...ERROR_CODES] : ['MessageTypeNotSupported'], mayIgnore: V16 },
        { name: 'unknown_action', raw: f([2, 'bad-action', 'FlyToTheMoon', {}]), id: 'bad-action', codes: ['NotImplemented'] },
        { name: 'other_version_action', raw: f([2, 'bad-otherver', otherVersionAction, {}]), id: 'bad-otherver', codes: ['NotImplemented'] },
        { name: 'csms_only_action', raw: f([2, 'bad-csmsonly', ...csmsOnlyAction]), id: 'bad-csmsonly', codes: ['NotSupported', 'NotImplemented'] },
        { name: 'payload_not_object', raw: f([2, 'bad-array', 'Heartbeat', []]), id: 'bad-array', codes: [fmt, 'TypeConstraintViolation', 'ProtocolError'] },
        { name: 'missing_required', raw: f([2, 'bad-missing', 'BootNotification', missing]), id: 'bad-missing', codes: [...occ, 'ProtocolError'] },
        { name: 'wrong_type', raw: f([2, 'bad-type', 'BootNotification', wrongType]), id: 'bad-type', codes: ['TypeConstraintViolation'] },
        { name: 'too_long', raw: f([2, 'bad-long', 'BootNotification', boot(V16 ? { chargePointVendor: longVendor } : { vendorName: longVendor })]),
          id: 'bad-long', codes: ['PropertyConstraintViolation', fmt] },
        { name: 'bad_enum', raw: f([2, 'bad-enum', 'StatusNotification', badStatus]), id: 'bad-enum', codes: ['PropertyConstraintViolation', fmt] },
        { name: 'bad_date_time', raw: f([2, 'bad-date', 'StatusNotification', badDate]), id: 'bad-date', codes: ['PropertyConstraintViolation', fmt, 'TypeConstraintViolation'] },
        { name: 'additional_property', raw: f([2, 'bad-extra', 'Heartbeat', { surprise: 1 }]), id: 'bad-extra', codes: [fmt, 'PropertyConstraintViolation'] },
        { name: 'result_unknown_id', raw: f([3, 'bad-result', {}]), id: 'bad-result', noReply: true },
        { name: 'error_unknown_id', raw: f([4, 'bad-error', 'GenericError', 'nothing', {}]), id: 'bad-error', noReply: true },
    ];
}

async function badMode() {
    await boot();
    await allStatuses();
    const inbox = [];
    const onMsg = ({ message, outbound }) => {
        if (outbound) return;
        try { inbox.push(JSON.parse(String(message))); } catch { inbox.push({ unparsable: String(message) }); }
    };
    client.on('message', onMsg);
    badFrameTolerance.active = true;
    const results = [];
    for (const c of badCases()) {
        inbox.length = 0;
        client.sendRaw(c.raw);
        const deadline = Date.now() + (c.noReply || c.mayIgnore ? 700 : 5000);
        while (Date.now() < deadline && inbox.length === 0) await sleep(20);
        await sleep(100);   // catch a second (duplicate) reply too
        const replies = inbox.slice();
        const ids = Array.isArray(c.id) ? c.id : [c.id];
        const result = { name: c.name, sent: c.raw, replies };
        if (c.noReply) {
            result.ok = replies.length === 0;
            if (!result.ok) result.problem = 'the CSMS must not answer a CALLRESULT/CALLERROR';
        } else if (replies.length === 0) {
            result.ok = !!c.mayIgnore;
            if (!result.ok) result.problem = 'no CALLERROR within 5 s';
        } else if (replies.length > 1) {
            result.ok = false;
            result.problem = 'more than one reply';
        } else {
            const r = replies[0];
            const problems = [];
            if (!Array.isArray(r) || r[0] !== 4) problems.push('reply is not a CALLERROR');
            else {
                if (!ids.includes(r[1])) problems.push(`CALLERROR id ${JSON.stringify(r[1])}, expected ${ids.join(' or ')}`);
                if (!c.codes.includes(r[2])) problems.push(`error code ${r[2]}, expected one of ${c.codes.join(', ')}`);
            }
            result.ok = problems.length === 0;
            if (!result.ok) result.problem = problems.join('; ');
        }
        results.push(result);
        emit({ event: 'bad_case', ...result });
        if (!result.ok) violation('bad_case', { name: c.name, sent: c.raw, replies, problem: result.problem });
    }
    badFrameTolerance.active = false;
    client.off('message', onMsg);
    // The connection and the station's registration survive all of it.
    await heartbeat();
    await statusNotification(1, 'Available');
    emit({ event: 'bad_done', cases: results.length, failed: results.filter(r => !r.ok).length });
}

// ---------------------------------------------------------------------------------------------
// --edge: valid but unusual traffic a real station sends (replays after reconnects, unknown
// transactions, offsets in timestamps, new connectors, offline transactions). A CSMS must answer
// every one with a CALLRESULT (a CALLERROR makes a station retry forever) and stay consistent.

function isoWithOffset(date, offsetMinutes) {
    const local = new Date(date.getTime() + offsetMinutes * 60000);
    const sign = offsetMinutes >= 0 ? '+' : '-';
    const abs = Math.abs(offsetMinutes);
    const hh = String(Math.floor(abs / 60)).padStart(2, '0');
    const mm = String(abs % 60).padStart(2, '0');
    return local.toISOString().slice(0, 19) + `${sign}${hh}:${mm}`;    // no fraction, with offset
}

async function edgeCall(name, action, params, check) {
    let answer;
    try {
        answer = await client.call(action, params);
    } catch (err) {
        const result = { name, action, params, ok: false, error: errInfo(err) };
        emit({ event: 'edge_case', ...result });
        violation('edge_callerror', { name, action, params, error: errInfo(err),
                                      note: 'a valid message must get a CALLRESULT' });
        return null;
    }
    const problem = check ? check(answer) : null;
    emit({ event: 'edge_case', name, action, params, answer, ok: !problem, ...(problem ? { problem } : {}) });
    if (problem) violation('edge_answer', { name, action, params, answer, problem });
    return answer;
}

const notAccepted = (status) => (status === 'Accepted' ? 'an unknown token was Accepted' : null);
const UNKNOWN_TAG = 'EDGE-UNKNOWN-0001';

function edgeTimes() {
    const started = new Date(Date.now() - 3600e3);   // an hour ago, sent with a +02:00 offset
    started.setUTCMilliseconds(0);
    const stopped = new Date(Date.now() - 1800e3);   // half an hour ago, sent with a -05:30 offset
    stopped.setUTCMilliseconds(0);
    return { started, stopped, startTs: isoWithOffset(started, 120), stopTs: isoWithOffset(stopped, -330) };
}

const mv201 = (ts, wh, context) => [{ timestamp: ts, sampledValue: [
    { value: wh, measurand: 'Energy.Active.Import.Register', context, unitOfMeasure: { unit: 'Wh' } }] }];

// basic: every message gets a CALLRESULT; replays are idempotent; offsets in timestamps are honoured.
async function edgeBasic16() {
    const { started, stopped, startTs, stopTs } = edgeTimes();
    const summary = { startedAt: started.toISOString(), stoppedAt: stopped.toISOString(), meterStart: 1000, meterStop: 1500 };
    await edgeCall('authorize_unknown', 'Authorize', { idTag: UNKNOWN_TAG }, (a) => notAccepted(a.idTagInfo.status));
    await edgeCall('authorize_max_length', 'Authorize', { idTag: args.token.padEnd(20, 'X').slice(0, 20) });
    const startParams = { connectorId: 1, idTag: args.token, meterStart: 1000, timestamp: startTs };
    const a1 = await edgeCall('start_offset_timestamp', 'StartTransaction', startParams,
        (a) => (a.idTagInfo.status === 'Accepted' ? null : `idTagInfo ${a.idTagInfo.status}`));
    await edgeCall('start_replay', 'StartTransaction', startParams,
        (a) => (a1 && a.transactionId !== a1.transactionId
            ? `a replayed StartTransaction got transactionId ${a.transactionId}, the first ${a1.transactionId}` : null));
    summary.transactionId = a1?.transactionId;
    await edgeCall('status_charging', 'StatusNotification', { connectorId: 1, errorCode: 'NoError', status: 'Charging', timestamp: startTs });
    await edgeCall('meter_values_signed', 'MeterValues', { connectorId: 1, transactionId: a1?.transactionId, meterValue: [
        { timestamp: startTs, sampledValue: [
            { value: '1200', measurand: 'Energy.Active.Import.Register', unit: 'Wh', context: 'Sample.Periodic' },
            { value: 'AQIDBAUGBwgJ', format: 'SignedData', measurand: 'Energy.Active.Import.Register', context: 'Sample.Periodic' }] }] });
    await edgeCall('meter_values_unknown_tx', 'MeterValues', { connectorId: 1, transactionId: 987654, meterValue: [
        { timestamp: now(), sampledValue: [{ value: '5', measurand: 'Energy.Active.Import.Register', unit: 'Wh' }] }] });
    await edgeCall('meter_values_main_meter', 'MeterValues', { connectorId: 0, meterValue: [
        { timestamp: now(), sampledValue: [{ value: '777000', measurand: 'Energy.Active.Import.Register', unit: 'Wh', location: 'Inlet' }] }] });
    await edgeCall('status_new_connector', 'StatusNotification', { connectorId: 2, errorCode: 'NoError', status: 'Available' });
    await edgeCall('status_faulted', 'StatusNotification', { connectorId: 2, errorCode: 'GroundFailure', status: 'Faulted',
                                                             info: 'edge', vendorErrorCode: 'E42', vendorId: args.vendor, timestamp: now() });
    const stopParams = { transactionId: a1?.transactionId ?? 1, meterStop: 1500, timestamp: stopTs, idTag: args.token, reason: 'EVDisconnected' };
    await edgeCall('stop_offset_timestamp', 'StopTransaction', stopParams);
    await edgeCall('stop_replay', 'StopTransaction', stopParams);
    await edgeCall('stop_unknown_transaction', 'StopTransaction', { transactionId: 876543, meterStop: 10, timestamp: now(), reason: 'PowerLoss' });
    const u = await edgeCall('start_unknown_tag', 'StartTransaction', { connectorId: 1, idTag: UNKNOWN_TAG, meterStart: 1500, timestamp: now() },
        (a) => notAccepted(a.idTagInfo.status));
    summary.unknownTransactionId = u?.transactionId;
    if (u) await edgeCall('stop_deauthorized', 'StopTransaction', { transactionId: u.transactionId, meterStop: 1500, timestamp: now(), reason: 'DeAuthorized' });
    await edgeCall('firmware_status', 'FirmwareStatusNotification', { status: 'Idle' });
    await edgeCall('diagnostics_status', 'DiagnosticsStatusNotification', { status: 'Idle' });
    await edgeCall('data_transfer_no_message_id', 'DataTransfer', { vendorId: 'com.example.unknown' });
    return summary;
}

async function edgeBasic201() {
    const { started, stopped, startTs, stopTs } = edgeTimes();
    const txId = `EDGE-${args.id}`.slice(0, 36);
    const summary = { startedAt: started.toISOString(), stoppedAt: stopped.toISOString(), meterStart: 1000, meterStop: 1500,
                      transactionId: txId };
    const token = { idToken: args.token, type: 'ISO14443' };
    await edgeCall('authorize_unknown', 'Authorize', { idToken: { idToken: UNKNOWN_TAG, type: 'ISO14443' } },
        (a) => notAccepted(a.idTokenInfo.status));
    const startEv = { eventType: 'Started', timestamp: startTs, triggerReason: 'Authorized', seqNo: 0, offline: true,
                      transactionInfo: { transactionId: txId, chargingState: 'Charging' }, idToken: token,
                      evse: { id: 1, connectorId: 1 }, meterValue: mv201(startTs, 1000, 'Transaction.Begin') };
    await edgeCall('started_offline_offset_timestamp', 'TransactionEvent', startEv,
        (a) => (a.idTokenInfo && a.idTokenInfo.status !== 'Accepted' ? `idTokenInfo ${a.idTokenInfo.status}` : null));
    await edgeCall('started_replay', 'TransactionEvent', startEv);
    await edgeCall('updated_seq1', 'TransactionEvent', { eventType: 'Updated', timestamp: startTs, triggerReason: 'MeterValuePeriodic',
        seqNo: 1, offline: true, transactionInfo: { transactionId: txId }, meterValue: mv201(startTs, 1200, 'Sample.Periodic') });
    await edgeCall('updated_seq2', 'TransactionEvent', { eventType: 'Updated', timestamp: startTs, triggerReason: 'MeterValuePeriodic',
        seqNo: 2, offline: true, transactionInfo: { transactionId: txId }, meterValue: mv201(startTs, 1300, 'Sample.Periodic') });
    await edgeCall('updated_seq2_replay', 'TransactionEvent', { eventType: 'Updated', timestamp: startTs, triggerReason: 'MeterValuePeriodic',
        seqNo: 2, offline: true, transactionInfo: { transactionId: txId }, meterValue: mv201(startTs, 1300, 'Sample.Periodic') });
    await edgeCall('updated_unknown_transaction', 'TransactionEvent', { eventType: 'Updated', timestamp: now(), triggerReason: 'MeterValuePeriodic',
        seqNo: 5, transactionInfo: { transactionId: 'EDGE-NEVER-STARTED' }, evse: { id: 2, connectorId: 1 }, meterValue: mv201(now(), 42, 'Sample.Periodic') });
    const endEv = { eventType: 'Ended', timestamp: stopTs, triggerReason: 'EVCommunicationLost', seqNo: 3, offline: true,
                    transactionInfo: { transactionId: txId, chargingState: 'Idle', stoppedReason: 'EVDisconnected' },
                    meterValue: mv201(stopTs, 1500, 'Transaction.End') };
    await edgeCall('ended_offline_offset_timestamp', 'TransactionEvent', endEv);
    await edgeCall('ended_replay', 'TransactionEvent', endEv);
    await edgeCall('ended_unknown_transaction', 'TransactionEvent', { eventType: 'Ended', timestamp: now(), triggerReason: 'EVDeparted',
        seqNo: 9, transactionInfo: { transactionId: 'EDGE-NEVER-SEEN', stoppedReason: 'EVDisconnected' } });
    const unknownTx = `EDGE-U-${args.id}`.slice(0, 36);
    summary.unknownTransactionId = unknownTx;
    await edgeCall('started_unknown_token', 'TransactionEvent', { eventType: 'Started', timestamp: now(), triggerReason: 'Authorized', seqNo: 0,
        transactionInfo: { transactionId: unknownTx }, idToken: { idToken: UNKNOWN_TAG, type: 'ISO14443' }, evse: { id: 1, connectorId: 1 } },
        (a) => (a.idTokenInfo ? notAccepted(a.idTokenInfo.status) : 'no idTokenInfo for a Started with an idToken'));
    await edgeCall('ended_deauthorized', 'TransactionEvent', { eventType: 'Ended', timestamp: now(), triggerReason: 'Deauthorized', seqNo: 1,
        transactionInfo: { transactionId: unknownTx, stoppedReason: 'DeAuthorized' } });
    await edgeCall('status_new_evse', 'StatusNotification', { timestamp: now(), connectorStatus: 'Available', evseId: 2, connectorId: 1 });
    await edgeCall('meter_values_main_meter', 'MeterValues', { evseId: 0, meterValue: [{ timestamp: now(), sampledValue: [
        { value: 777000, measurand: 'Energy.Active.Import.Register', location: 'Inlet', unitOfMeasure: { unit: 'Wh' } }] }] });
    await edgeCall('notify_event', 'NotifyEvent', { generatedAt: now(), seqNo: 0, eventData: [{
        eventId: 1, timestamp: now(), trigger: 'Delta', actualValue: 'Faulted', eventNotificationType: 'HardWiredNotification',
        component: { name: 'Connector', evse: { id: 1, connectorId: 1 } }, variable: { name: 'AvailabilityState' } }] });
    await edgeCall('security_event', 'SecurityEventNotification', { type: 'StartupOfTheDevice', timestamp: now(), techInfo: 'edge' });
    await edgeCall('firmware_status', 'FirmwareStatusNotification', { status: 'Idle' });
    await edgeCall('log_status', 'LogStatusNotification', { status: 'Idle' });
    await edgeCall('data_transfer_no_message_id', 'DataTransfer', { vendorId: 'com.example.unknown' });
    return summary;
}

// txid-reuse (1.6): the station reports a transaction the CSMS never allocated (started under
// another CSMS, or before the CSMS's database was restored from a backup) whose id happens to be
// the next one the CSMS allocates. The CSMS must not hand that id out again to this station.
async function edgeTxIdReuse16() {
    const first = await edgeCall('start_first', 'StartTransaction', { connectorId: 1, idTag: args.token, meterStart: 100, timestamp: now() });
    if (!first) return {};
    await edgeCall('stop_first', 'StopTransaction', { transactionId: first.transactionId, meterStop: 200, timestamp: now(), reason: 'Local' });
    const used = new Set([first.transactionId]);
    const ahead = first.transactionId + 2;   // the stop below takes one id, the next start the one after
    used.add(ahead);
    await edgeCall('stop_foreign_transaction', 'StopTransaction', { transactionId: ahead, meterStop: 20, timestamp: now(), reason: 'PowerLoss' });
    const ids = [];
    for (let i = 0; i < 3; i++) {
        const n = await edgeCall(`start_${i}`, 'StartTransaction', { connectorId: 1, idTag: args.token, meterStart: 2000 + i, timestamp: now() },
            (a) => (used.has(a.transactionId)
                ? `transactionId ${a.transactionId} is already taken by this station's transactions ${[...used].join(', ')}` : null));
        if (!n) break;
        used.add(n.transactionId);
        ids.push(n.transactionId);
        await edgeCall(`stop_${i}`, 'StopTransaction', { transactionId: n.transactionId, meterStop: 2100 + i, timestamp: now(), reason: 'Local' });
    }
    return { foreignTransactionId: ahead, transactionIds: ids };
}

// late-ended (2.0.1): the Ended of transaction A arrives after the Started of transaction B on the
// same EVSE (A's Ended was retried after a failed delivery). The CSMS may close A when B starts,
// but the station's own Ended (higher seqNo, its timestamp, meter and reason) must then win.
async function edgeLateEnded201() {
    const { started, stopped, startTs, stopTs } = edgeTimes();
    const a = `LATE-A-${args.id}`.slice(0, 36);
    const b = `LATE-B-${args.id}`.slice(0, 36);
    const token = { idToken: args.token, type: 'ISO14443' };
    await edgeCall('a_started', 'TransactionEvent', { eventType: 'Started', timestamp: startTs, triggerReason: 'Authorized', seqNo: 0,
        transactionInfo: { transactionId: a, chargingState: 'Charging' }, idToken: token, evse: { id: 1, connectorId: 1 },
        meterValue: mv201(startTs, 1000, 'Transaction.Begin') });
    const bTs = now();
    await edgeCall('b_started', 'TransactionEvent', { eventType: 'Started', timestamp: bTs, triggerReason: 'Authorized', seqNo: 0,
        transactionInfo: { transactionId: b, chargingState: 'Charging' }, idToken: token, evse: { id: 1, connectorId: 1 },
        meterValue: mv201(bTs, 1600, 'Transaction.Begin') });
    await edgeCall('a_ended_late', 'TransactionEvent', { eventType: 'Ended', timestamp: stopTs, triggerReason: 'EVCommunicationLost', seqNo: 1,
        transactionInfo: { transactionId: a, chargingState: 'Idle', stoppedReason: 'EVDisconnected' },
        meterValue: mv201(stopTs, 1500, 'Transaction.End') });
    await edgeCall('b_ended', 'TransactionEvent', { eventType: 'Ended', timestamp: now(), triggerReason: 'StopAuthorized', seqNo: 1,
        transactionInfo: { transactionId: b, chargingState: 'Idle', stoppedReason: 'Local' }, idToken: token,
        meterValue: mv201(now(), 1700, 'Transaction.End') });
    return { a, b, aStartedAt: started.toISOString(), aStoppedAt: stopped.toISOString(), aMeterStart: 1000, aMeterStop: 1500,
             bMeterStart: 1600, bMeterStop: 1700 };
}

// seq-reorder (2.0.1): seqNo 2 arrives before seqNo 1 (seqNo 1 was retried). Neither is a
// duplicate: the meter values of both must be stored.
async function edgeSeqReorder201() {
    const tx = `REORDER-${args.id}`.slice(0, 36);
    const token = { idToken: args.token, type: 'ISO14443' };
    const t0 = now();
    await edgeCall('started', 'TransactionEvent', { eventType: 'Started', timestamp: t0, triggerReason: 'Authorized', seqNo: 0,
        transactionInfo: { transactionId: tx, chargingState: 'Charging' }, idToken: token, evse: { id: 1, connectorId: 1 },
        meterValue: mv201(t0, 1000, 'Transaction.Begin') });
    await edgeCall('updated_seq2', 'TransactionEvent', { eventType: 'Updated', timestamp: now(), triggerReason: 'MeterValuePeriodic', seqNo: 2,
        transactionInfo: { transactionId: tx }, meterValue: mv201(now(), 1300, 'Sample.Periodic') });
    await edgeCall('updated_seq1_late', 'TransactionEvent', { eventType: 'Updated', timestamp: now(), triggerReason: 'MeterValuePeriodic', seqNo: 1,
        transactionInfo: { transactionId: tx }, meterValue: mv201(now(), 1200, 'Sample.Periodic') });
    await edgeCall('ended', 'TransactionEvent', { eventType: 'Ended', timestamp: now(), triggerReason: 'StopAuthorized', seqNo: 3,
        transactionInfo: { transactionId: tx, stoppedReason: 'Local' }, idToken: token, meterValue: mv201(now(), 1400, 'Transaction.End') });
    return { transactionId: tx, registers: [1000, 1200, 1300, 1400] };
}

// lost-tx: the station reboots in a transaction and forgets it (it never sends the end). After
// its BootNotification the CSMS must find out and close the transaction itself: 2.0.1 asks
// GetTransactionStatus (this station answers: not ongoing, nothing queued); 1.6 cannot ask, the
// connector then reports Available.
async function edgeLostTx() {
    const t0 = now();
    let transactionId;
    if (V16) {
        const a = await edgeCall('start', 'StartTransaction', { connectorId: 1, idTag: args.token, meterStart: 1000, timestamp: t0 });
        transactionId = a?.transactionId;
        await edgeCall('status_charging', 'StatusNotification', { connectorId: 1, errorCode: 'NoError', status: 'Charging' });
        await edgeCall('meter_values', 'MeterValues', { connectorId: 1, transactionId, meterValue: [
            { timestamp: now(), sampledValue: [{ value: '1200', measurand: 'Energy.Active.Import.Register', unit: 'Wh' }] }] });
    } else {
        transactionId = `LOST-${args.id}`.slice(0, 36);
        await edgeCall('started', 'TransactionEvent', { eventType: 'Started', timestamp: t0, triggerReason: 'Authorized', seqNo: 0,
            transactionInfo: { transactionId, chargingState: 'Charging' }, idToken: { idToken: args.token, type: 'ISO14443' },
            evse: { id: 1, connectorId: 1 }, meterValue: mv201(t0, 1000, 'Transaction.Begin') });
        await edgeCall('updated', 'TransactionEvent', { eventType: 'Updated', timestamp: now(), triggerReason: 'MeterValuePeriodic', seqNo: 1,
            transactionInfo: { transactionId }, meterValue: mv201(now(), 1200, 'Sample.Periodic') });
    }
    // the reboot: the transaction is gone from the station
    await edgeCall('boot_after_reboot', 'BootNotification', V16
        ? { chargePointVendor: 'StrictVendor', chargePointModel: 'ocpp-rpc-strict' }
        : { reason: 'PowerUp', chargingStation: { vendorName: 'StrictVendor', model: 'ocpp-rpc-strict' } },
        (a) => (a.status === 'Accepted' ? null : `boot answered ${a.status}`));
    if (V16) {
        await edgeCall('status_available', 'StatusNotification', { connectorId: 1, errorCode: 'NoError', status: 'Available' });
    } else {
        for (let i = 0; i < 200 && !station.txStatusAsked.includes(transactionId); i++) await sleep(50);
        expect(station.txStatusAsked.includes(transactionId), 'transaction_status_not_asked', { transactionId, asked: station.txStatusAsked });
    }
    return { transactionId, meterLast: 1200 };
}

const EDGE_SCENARIOS = {
    basic: () => (V16 ? edgeBasic16() : edgeBasic201()),
    'txid-reuse': () => (V16 ? edgeTxIdReuse16() : usage('--edge txid-reuse is an OCPP 1.6 scenario')),
    'late-ended': () => (V16 ? usage('--edge late-ended is an OCPP 2.0.1 scenario') : edgeLateEnded201()),
    'seq-reorder': () => (V16 ? usage('--edge seq-reorder is an OCPP 2.0.1 scenario') : edgeSeqReorder201()),
    'lost-tx': () => edgeLostTx(),
};

async function edgeMode() {
    const scenario = EDGE_SCENARIOS[args.edge];
    if (!scenario) usage(`--edge is one of ${Object.keys(EDGE_SCENARIOS).join(', ')}`);
    await bootUntilAccepted('PowerUp');
    await allStatuses();
    await edgeCall('boot_again', 'BootNotification', V16
        ? { chargePointVendor: 'StrictVendor', chargePointModel: 'ocpp-rpc-strict' }
        : { reason: 'Unknown', chargingStation: { vendorName: 'StrictVendor', model: 'ocpp-rpc-strict' } },
        (a) => (a.status === 'Accepted' ? null : `boot answered ${a.status}`));
    const summary = await scenario();
    await edgeCall('heartbeat', 'Heartbeat', {});
    emit({ event: 'edge_done', scenario: args.edge, ...summary });
}

// ---------------------------------------------------------------------------------------------
// linger: stay connected answering the CSMS until --linger seconds pass or "quit" on stdin

async function linger() {
    if (!args.linger) return;
    emit({ event: 'lingering', seconds: args.linger });
    let quit;
    const quitPromise = new Promise(resolve => { quit = resolve; });
    const rl = readline.createInterface({ input: process.stdin });
    rl.on('line', (line) => {
        const cmd = line.trim();
        if (cmd === 'quit') quit('quit');
        else if (cmd === 'meter' && station.tx) meterValues().catch(() => {});
        else if (cmd.startsWith('call ')) {
            // "call {"action": A, "params": {...}}": send that call; its answer (checked against the
            // official schema by ocpp-rpc) is an "answer" event, a refusal an "answer_error" one
            let request;
            try { request = JSON.parse(cmd.slice(5)); } catch (err) { violation('bad_stdin', { line: cmd }); return; }
            call(request.action, request.params, { allowError: true }).catch(() => {});
        }
    });
    const timer = setTimeout(() => quit('timeout'), args.linger * 1000);
    // while a transaction runs, report meter values every second
    const meterTimer = setInterval(() => {
        if (station.tx && !station.rebooting && client.state === RPCClient.OPEN) meterValues().catch(() => {});
    }, 1000);
    const why = await quitPromise;
    clearTimeout(timer);
    clearInterval(meterTimer);
    rl.close();
    // give follow-ups a moment (a reboot or a remote stop in progress)
    for (let i = 0; i < 100 && station.rebooting; i++) await sleep(100);
    emit({ event: 'linger_end', why });
}

// ---------------------------------------------------------------------------------------------

async function main() {
    registerHandlers();
    try {
        await client.connect();
    } catch (err) {
        emit({ event: 'error', kind: 'connect_failed', error: { message: err.message, code: err.code } });
        process.exit(2);
    }
    emit({ event: 'connected', protocol: client.protocol });
    if (client.protocol !== args.protocol) {
        violation('subprotocol', { offered: args.protocol, got: client.protocol });
    }
    try {
        if (args.bad) await badMode();
        else if (args.edge) await edgeMode();
        else await walk();
        await linger();
        if (station.tx) await stopTransaction('Local');
    } catch (err) {
        if (!violations) violation('aborted', { error: errInfo(err), stack: err?.stack });
    }
    // wait for our queued calls before closing
    for (let i = 0; i < 50 && (client._pendingCalls?.size || serverCallsOpen); i++) await sleep(100);
    station.closingOnPurpose = true;
    try {
        await client.close({ code: 1000, reason: 'done', awaitPending: true });
    } catch { /* already closed */ }
    const code = violations ? 1 : 0;
    emit({ event: 'exit', code, violations });
    process.exitCode = code;
    // do not hang on stdin or timers
    setTimeout(() => process.exit(code), 50).unref();
}

main().catch(err => {
    emit({ event: 'error', kind: 'crash', error: errInfo(err), stack: err?.stack });
    process.exit(1);
});
