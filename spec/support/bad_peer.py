#!/usr/bin/python3
"""Misbehaving peers for spec/bad_server_spec.lua.

    /usr/bin/python3 spec/support/bad_peer.py MODE [ARG]

Prints "LISTENING 127.0.0.1:PORT" on stdout once it accepts connections, then serves until
killed (SIGTERM/SIGKILL by the spec). Every mode logs what it saw as lines on stdout
("CONN n", "BYTES n", "CALL /path", ...) so the spec can check what reached it.

Raw TCP modes (standard library only):
  silent      accept, read and discard, never write a byte
  close       accept, read the first bytes of the call, then close the connection
  junk        accept, answer with bytes that are not HTTP/2, then keep the socket open
  count       accept, read everything, log "BYTES n" totals (did anything reach the wire?)
  cutter      a TCP proxy to 127.0.0.1:ARG that closes both sides of a connection the moment
              the bytes "CUT-HERE" pass from the client (a request carrying that text is cut
              mid-call, after the HTTP/2 connection and the call have started)

gRPC modes (Debian's python3-grpcio; generic handlers answer raw bytes, no codegen):
  hang        accept the call, never answer (until killed)
  garbage     answer every call with bytes that are not a protobuf message
  unknown     answer a valid ExternalEvent carrying unknown fields everywhere and a
              VariableValue member this client does not know (field 99)
  huge        answer a valid ExternalEvent whose content is ARG bytes (default 5 MiB)
  deep        answer an ExternalEvent whose content is ARG native ARRAYs nested in each other
  deepjson    answer an ExternalEvent whose content is JSON nested ARG deep
  exit        exit the whole process (no answer, sockets reset) when a call arrives
  slowok      answer a valid ExternalEvent after ARG seconds
  nul         answer an ExternalEvent (an ExternalEventDef for the *Def calls) with U+0000 in
              every string field: ids, def name, guid, and content (a native array holding
              str, JSON text raw and escaped, a struct name and field name, a map key, a
              WfRunId id)
  nulgeneric  the same, plus an unknown field in the ExternalEvent (for the generic decoder)
  stuck       answer list and search calls with an empty page that has the bookmark the call
              sent ("page-2" when it sent none): a server that never moves on. After ARG
              calls (default 20) it answers UNAVAILABLE instead, so a client that follows the
              bookmark forever fails rather than hangs
"""
import os
import socket
import sys
import threading
import time

UPSTREAM = None

def log(*a):
    print(*a, flush=True)


# ---- tiny protobuf writer (enough for the replies) ----

def varint(n):
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def field_bytes(num, data):
    return varint(num << 3 | 2) + varint(len(data)) + data


def field_varint(num, v):
    return varint(num << 3) + varint(v)


def external_event(content=b"", extra=b"", id_extra=b""):
    wf = field_bytes(1, b"wf-1")                          # WfRunId.id
    defid = field_bytes(1, b"ev")                         # ExternalEventDefId.name
    evid = field_bytes(1, wf) + field_bytes(2, defid) + field_bytes(3, b"guid-1") + id_extra
    ts = field_varint(1, 1700000000) + field_varint(2, 5000000)
    msg = field_bytes(1, evid) + field_bytes(2, ts)
    if content:
        msg += field_bytes(3, content)
    return msg + extra


def nul_content():
    """VariableValue{array: [...]} with U+0000 in every string it holds."""
    def value(member, data):
        return field_bytes(member, data)
    struct_field = field_bytes(1, value(6, b"field\x00value"))       # StructField.value
    fields_entry = field_bytes(1, b"na\x00me") + field_bytes(2, struct_field)
    struct = (field_bytes(1, field_bytes(1, b"Str\x00uct") + field_varint(2, 3)) +
              field_bytes(2, field_bytes(1, fields_entry)))           # Struct{def id, InlineStruct}
    entry = field_bytes(1, value(6, b"key\x00")) + field_bytes(2, value(6, b"\x00val"))
    items = [
        value(6, b"a\x00b"),
        value(6, b"\x00"),
        value(2, b'{"k":"raw\x00nul"}'),                              # not valid JSON: kept raw
        value(3, b'["esc\\u0000aped"]'),                             # valid: decoded
        value(11, struct),
        value(13, field_bytes(1, entry)),
        value(9, field_bytes(1, b"w\x00f") + field_bytes(2, field_bytes(1, b"par\x00ent"))),
        value(8, b"by\x00tes"),
    ]
    return field_bytes(12, b"".join(field_bytes(1, item) for item in items))


def nul_event(extra=b""):
    wf = field_bytes(1, b"wf\x00run") + field_bytes(2, field_bytes(1, b"\x00parent"))
    evid = field_bytes(1, wf) + field_bytes(2, field_bytes(1, b"def\x00name")) + field_bytes(3, b"gu\x00id")
    ts = field_varint(1, 1700000000)
    return field_bytes(1, evid) + field_bytes(2, ts) + field_bytes(3, nul_content()) + extra


def nul_def():
    return field_bytes(1, field_bytes(1, b"def\x00name")) + field_bytes(2, field_varint(1, 1700000000))


def top_fields(data):
    """The length-delimited and varint fields of a message: {number: value}."""
    out, pos = {}, 0

    def read_varint():
        nonlocal pos
        v, shift = 0, 0
        while True:
            b = data[pos]
            pos += 1
            v |= (b & 0x7F) << shift
            shift += 7
            if b < 0x80:
                return v

    while pos < len(data):
        key = read_varint()
        if key & 7 == 2:
            n = read_varint()
            out[key >> 3] = data[pos:pos + n]
            pos += n
        else:
            out[key >> 3] = read_varint()
    return out


def stuck_page(request, method):
    """An empty page (results: none) whose bookmark (field 2 of every list reply) is the one
    the request sent: field 2 of ListExternalEventsRequest, field 1 of the search requests."""
    sent = top_fields(request).get(2 if method.endswith("/ListExternalEvents") else 1)
    return field_bytes(2, sent or b"page-2")


def reply_for(mode, arg, method=""):
    if mode in ("nul", "nulgeneric"):
        if method.endswith("Def"):
            return nul_def()
        return nul_event(field_varint(60, 1) if mode == "nulgeneric" else b"")
    if mode == "garbage":
        return b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x0f this is not protobuf"
    if mode == "unknown":
        # content: VariableValue with only an unknown member (field 99, a string)
        content = field_bytes(99, b"from a newer server")
        unknown = (field_varint(50, 7) + field_bytes(51, b"future field") +
                   varint(52 << 3 | 1) + b"\x00" * 8 +     # fixed64
                   varint(53 << 3 | 5) + b"\x00" * 4)      # fixed32
        return external_event(content=content, extra=unknown, id_extra=field_bytes(40, b"x"))
    if mode == "unknown2":
        # a known member plus unknown siblings inside the VariableValue
        content = field_bytes(6, b"hello") + field_varint(77, 1)
        return external_event(content=content, extra=field_varint(60, 1))
    if mode == "huge":
        n = int(arg or 5 * 1024 * 1024)
        return external_event(content=field_bytes(8, b"x" * n))
    if mode == "deep":
        # VariableValue{array: Array{items: [VariableValue{array: ...}]}}, n levels, built in
        # linear time: lengths from the inside out, then the headers from the outside in.
        n = int(arg or 100000)
        inner = field_varint(7, 1)                         # innermost: int 1
        heads = []
        size = len(inner)
        for _ in range(n):
            h_items = varint(1 << 3 | 2) + varint(size)    # Array.items
            size += len(h_items)
            h_array = varint(12 << 3 | 2) + varint(size)   # VariableValue.array
            size += len(h_array)
            heads.append(h_array + h_items)
        return external_event(content=b"".join(reversed(heads)) + inner)
    if mode == "deepjson":
        n = int(arg or 100000)
        return external_event(content=field_bytes(3, b"[" * n + b"]" * n))
    return external_event(content=field_bytes(6, b"ok"))


# ---- raw TCP peers ----

def raw_server(mode):
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(64)
    log("LISTENING 127.0.0.1:%d" % srv.getsockname()[1])
    conns = [0]
    total = [0]
    lock = threading.Lock()

    def serve(c):
        with lock:
            conns[0] += 1
            log("CONN %d" % conns[0])
        try:
            if mode == "junk":
                c.sendall(b"\x00\x01 this is not an HTTP/2 server \xff\xfe" * 100)
            got = 0
            while True:
                data = c.recv(65536)
                if not data:
                    break
                got += len(data)
                with lock:
                    total[0] += len(data)
                    if mode == "count":
                        log("BYTES %d" % total[0])
                # the client preface (24) + SETTINGS + HEADERS: the call has started
                if mode == "close" and got >= 100:
                    log("CLOSING after %d bytes" % got)
                    break
        except OSError:
            pass
        finally:
            c.close()

    def proxy(c):
        up = socket.create_connection(("127.0.0.1", int(UPSTREAM)))
        with lock:
            conns[0] += 1
            log("CONN %d" % conns[0])

        def pump(src, dst, cut):
            tail = b""
            try:
                while True:
                    data = src.recv(65536)
                    if not data:
                        break
                    if cut and b"CUT-HERE" in tail + data:
                        log("CUT")
                        break
                    tail = data[-16:]
                    dst.sendall(data)
            except OSError:
                pass
            for sock in (src, dst):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

        threading.Thread(target=pump, args=(up, c, False), daemon=True).start()
        pump(c, up, True)
        c.close()
        up.close()

    while True:
        c, _ = srv.accept()
        threading.Thread(target=proxy if mode == "cutter" else serve, args=(c,), daemon=True).start()


# ---- gRPC peers ----

def grpc_server(mode, arg):
    import grpc
    from concurrent import futures

    calls = [0]

    def handler(request, context, method=""):
        log("CALL %d bytes" % len(request))
        calls[0] += 1
        if mode == "stuck":
            if calls[0] > int(arg or 20):
                context.abort(grpc.StatusCode.UNAVAILABLE, "stuck: too many calls")
            return stuck_page(request, method)
        if mode == "hang":
            while True:
                time.sleep(3600)
        if mode == "exit":
            os._exit(3)
        if mode == "slowok":
            time.sleep(float(arg or 1))
        return reply_for(mode, arg, method)

    class Generic(grpc.GenericRpcHandler):
        def service(self, details):
            log("METHOD %s" % details.method)
            method = details.method
            return grpc.unary_unary_rpc_method_handler(lambda req, ctx: handler(req, ctx, method))

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=32),
                         options=[("grpc.max_send_message_length", -1),
                                  ("grpc.max_receive_message_length", -1)])
    server.add_generic_rpc_handlers((Generic(),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    log("LISTENING 127.0.0.1:%d" % port)
    server.wait_for_termination()


def watch_parent(pid):
    """Exit when the process that started us is gone (it may have crashed: no stop() then)."""
    def loop():
        while os.path.exists("/proc/%d" % pid):
            time.sleep(0.5)
        os._exit(0)
    threading.Thread(target=loop, daemon=True).start()


def main():
    mode = sys.argv[1] if len(sys.argv) > 1 else "silent"
    arg = sys.argv[2] if len(sys.argv) > 2 else None
    if os.environ.get("BAD_PEER_PARENT"):
        watch_parent(int(os.environ["BAD_PEER_PARENT"]))
    if mode in ("silent", "close", "junk", "count", "cutter"):
        global UPSTREAM
        UPSTREAM = arg
        raw_server(mode)
    else:
        grpc_server(mode, arg)


if __name__ == "__main__":
    main()
