"""Python grpcio (Debian python3-grpcio) under the same load.

    /usr/bin/python3 bench/py_bench.py STUBS_DIR TARGET REQUEST.bin MODE...   MODE: seq | N

STUBS_DIR holds service_pb2*.py generated from our proto/ by python3-grpc-tools (run.sh does it).
The request message is parsed from REQUEST.bin (our encoder's bytes) and checked to serialize
back to exactly those bytes. "seq" uses the ordinary blocking stub; N uses grpc.aio with N
tasks, each awaiting one call at a time. Both send `tenantid: default` metadata and decode the
reply into an ExternalEvent message, like any grpcio user.
Environment as bench/baseline.c: BENCH_SECONDS, BENCH_WARMUP, BENCH_SERVER_PID, BENCH_LABEL.
"""
import asyncio
import os
import sys
import time

stubs, target, req_file, *modes = sys.argv[1:]
sys.path.insert(0, stubs)
import grpc  # noqa: E402
import grpc.aio  # noqa: E402
import service_pb2  # noqa: E402
import service_pb2_grpc  # noqa: E402

SECONDS = float(os.environ.get("BENCH_SECONDS", "2"))
WARMUP = float(os.environ.get("BENCH_WARMUP", "0.5"))
SERVER_PID = os.environ.get("BENCH_SERVER_PID")
LABEL = os.environ.get("BENCH_LABEL", "1")
CLK_TCK = float(os.environ.get("BENCH_CLK_TCK", "100"))
METADATA = (("tenantid", "default"),)

with open(req_file, "rb") as f:
    want = f.read()
req = service_pb2.PutExternalEventRequest.FromString(want)
if req.SerializeToString() != want:
    sys.exit("py_bench: grpcio does not re-encode the request to the same bytes")

now = time.perf_counter
cpu = time.process_time  # the whole process, gRPC's threads included


def server_cpu():
    if not SERVER_PID:
        return None
    try:
        with open(f"/proc/{SERVER_PID}/stat") as f:
            s = f.read()
    except OSError:
        return None
    fields = s[s.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def machine_cpu():
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:9]]
    except OSError:
        return 0.0
    return (v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / CLK_TCK


def run_seq(stub, seconds, lat):
    put = stub.PutExternalEvent
    errors = 0
    t0 = now()
    deadline = t = t0
    deadline = t0 + seconds
    while True:
        s = now()
        try:
            put(req, metadata=METADATA, timeout=10)
            ok = True
        except grpc.RpcError:
            ok = False
        t = now()
        if ok:
            if lat is not None:
                lat.append(t - s)
        else:
            errors += 1
        if t >= deadline:
            break
    return t - t0, errors, cpu(), server_cpu(), machine_cpu()


async def run_aio(stub, n, seconds, lat):
    put = stub.PutExternalEvent
    t0 = now()
    deadline = t0 + seconds
    st = {"stopping": False, "errors": 0, "end": None}

    async def worker():
        while not st["stopping"]:
            s = now()
            try:
                await put(req, metadata=METADATA, timeout=10)
                ok = True
            except grpc.RpcError:
                ok = False
            t = now()
            if st["stopping"]:
                break
            if ok:
                if lat is not None:
                    lat.append(t - s)
            else:
                st["errors"] += 1
            if t >= deadline:
                st["stopping"] = True
                st["end"] = (t - t0, cpu(), server_cpu(), machine_cpu())

    await asyncio.gather(*(worker() for _ in range(n)))
    secs, cpu_end, srv_end, busy_end = st["end"]
    return secs, st["errors"], cpu_end, srv_end, busy_end


def q(a, p):
    return a[int(p * (len(a) - 1))] if a else 0.0


def report(mode, n, lat, secs, errors, cpu0, cpu1, srv0, srv1, busy):
    lat.sort()
    srv = srv1 - srv0 if srv0 is not None and srv1 is not None else -1
    print(f"RESULT client=py mode={mode} inflight={n} rep={LABEL} calls={len(lat)} errors={errors} "
          f"secs={secs:.6f} cpu={cpu1 - cpu0:.6f} srv_cpu={srv:.6f} "
          f"p50_us={q(lat, 0.5) * 1e6:.1f} p99_us={q(lat, 0.99) * 1e6:.1f} busy={busy:.2f}", flush=True)


async def aio_modes(ns):
    async with grpc.aio.insecure_channel(target) as ch:
        stub = service_pb2_grpc.LittleHorseStub(ch)
        await run_aio(stub, 1, WARMUP, None)
        for n in ns:
            await run_aio(stub, n, WARMUP, None)
            lat = []
            cpu0, srv0, busy0 = cpu(), server_cpu(), machine_cpu()
            secs, errors, cpu1, srv1, busy1 = await run_aio(stub, n, SECONDS, lat)
            report("async", n, lat, secs, errors, cpu0, cpu1, srv0, srv1, busy1 - busy0)


def main():
    if "seq" in modes:
        with grpc.insecure_channel(target) as ch:
            stub = service_pb2_grpc.LittleHorseStub(ch)
            run_seq(stub, WARMUP, None)
            run_seq(stub, WARMUP, None)
            lat = []
            cpu0, srv0, busy0 = cpu(), server_cpu(), machine_cpu()
            secs, errors, cpu1, srv1, busy1 = run_seq(stub, SECONDS, lat)
            report("seq", 1, lat, secs, errors, cpu0, cpu1, srv0, srv1, busy1 - busy0)
    ns = [int(m) for m in modes if m != "seq"]
    if ns:
        asyncio.run(aio_modes(ns))
    print(f"PROC client=py cpu={cpu():.3f}")


main()
