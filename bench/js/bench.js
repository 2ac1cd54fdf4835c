// The official LittleHorse JS SDK (npm littlehorse-client 0.14.0) under the same load.
//   node bench/js/bench.js TARGET REQUEST.bin MODE...     MODE: seq | N (N calls in flight)
// The request object is decoded from REQUEST.bin (our encoder's bytes) with the SDK's own
// generated code, and checked to encode back to exactly those bytes; it goes through the SDK's
// normal path: LHConfig.from(...).getClient().putExternalEvent(req) (nice-grpc, tenantId metadata).
// Environment as bench/baseline.c: BENCH_SECONDS, BENCH_WARMUP, BENCH_SERVER_PID, BENCH_LABEL.
'use strict';
const fs = require('fs');
const { LHConfig } = require('littlehorse-client');
const { PutExternalEventRequest } = require('littlehorse-client/proto');

const [target, reqFile, ...modes] = process.argv.slice(2);
if (!target || !reqFile || modes.length === 0) {
  console.error('usage: bench.js TARGET REQUEST.bin seq|N...');
  process.exit(2);
}
const SECONDS = Number(process.env.BENCH_SECONDS || 2);
const WARMUP = Number(process.env.BENCH_WARMUP || 0.5);
const SERVER_PID = process.env.BENCH_SERVER_PID;
const LABEL = process.env.BENCH_LABEL || '1';
const CLK_TCK = Number(process.env.BENCH_CLK_TCK || 100);

const bytes = fs.readFileSync(reqFile);
const req = PutExternalEventRequest.decode(bytes);
const again = Buffer.from(PutExternalEventRequest.encode(req).finish());
if (!again.equals(bytes)) {
  console.error('bench.js: the SDK does not re-encode the request to the same bytes:\n  ' +
                again.toString('hex') + '\n  ' + bytes.toString('hex'));
  process.exit(1);
}

const i = target.lastIndexOf(':');
const client = LHConfig.from({ apiHost: target.slice(0, i), apiPort: target.slice(i + 1), tenantId: 'default' })
  .getClient();

const now = () => Number(process.hrtime.bigint()) / 1e9;
const cpu = () => { const u = process.cpuUsage(); return (u.user + u.system) / 1e6; };
function serverCpu() {
  if (!SERVER_PID) return null;
  try {
    const s = fs.readFileSync(`/proc/${SERVER_PID}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / CLK_TCK;
  } catch (e) { return null; }
}

function machineCpu() {
  try {
    const f = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
    return (f[0] + f[1] + f[2] + f[5] + f[6] + f[7]) / CLK_TCK;
  } catch (e) { return 0; }
}

// n workers, each awaiting one call at a time: n calls in flight. The window ends at the
// first completion past the deadline; calls still in flight then are drained, not counted.
async function run(n, seconds, lat) {
  const t0 = now();
  const deadline = t0 + seconds;
  let stopping = false, errors = 0, tEnd = 0, cpuEnd = 0, srvEnd = null, busyEnd = 0, firstErr = null;
  async function worker() {
    while (!stopping) {
      const s = now();
      let ok = true;
      try { await client.putExternalEvent(req); } catch (e) { ok = false; firstErr = firstErr || e; }
      const t = now();
      if (stopping) break;
      if (ok) { if (lat) lat.push(t - s); } else errors++;
      if (t >= deadline) { stopping = true; tEnd = t; cpuEnd = cpu(); srvEnd = serverCpu(); busyEnd = machineCpu(); }
    }
  }
  const ws = [];
  for (let k = 0; k < n; k++) ws.push(worker());
  await Promise.all(ws);
  if (firstErr && process.env.BENCH_VERBOSE) console.error(String(firstErr));
  return { secs: tEnd - t0, errors, cpuEnd, srvEnd, busyEnd };
}

const q = (a, p) => (a.length ? a[Math.floor(p * (a.length - 1))] : 0);

(async () => {
  await run(1, WARMUP);
  for (const m of modes) {
    const n = m === 'seq' ? 1 : Number(m);
    await run(n, WARMUP);
    const lat = [];
    const cpu0 = cpu(), srv0 = serverCpu(), busy0 = machineCpu();
    const r = await run(n, SECONDS, lat);
    lat.sort((a, b) => a - b);
    console.log(`RESULT client=js mode=${m === 'seq' ? 'seq' : 'async'} inflight=${n} rep=${LABEL} ` +
      `calls=${lat.length} errors=${r.errors} secs=${r.secs.toFixed(6)} cpu=${(r.cpuEnd - cpu0).toFixed(6)} ` +
      `srv_cpu=${srv0 !== null && r.srvEnd !== null ? (r.srvEnd - srv0).toFixed(6) : -1} ` +
      `p50_us=${(q(lat, 0.5) * 1e6).toFixed(1)} p99_us=${(q(lat, 0.99) * 1e6).toFixed(1)} ` +
      `busy=${(r.busyEnd - busy0).toFixed(2)}`);
  }
  console.log(`PROC client=js cpu=${cpu().toFixed(3)}`);
  process.exit(0);
})().catch((e) => { console.error(e); process.exit(1); });
