/* conns.h: the server's client connections, seen from the socket layer.
 *
 * Counting: this file defines accept4(2). libgrpc calls accept4 through the PLT, and a
 * definition in the executable comes first in symbol lookup, so every connection gRPC's
 * listener accepts passes through here (then on to the real system call). That gives the
 * total of accepted connections (TCP, before TLS), for tests that prove client channel reuse.
 *
 * Dropping (--drop-next): the socket whose peer is the call's peer (grpc_call_get_peer) and
 * whose local port is the server's is found by scanning /proc/self/fd, then shutdown(2) in
 * both directions. gRPC sees the connection fail and closes it: the client gets a broken
 * connection (UNAVAILABLE), exactly as when a server dies mid-call. gRPC still owns and closes
 * the descriptor; it is only shut down here. */
#ifndef LHDS_CONNS_H
#define LHDS_CONNS_H

/* Connections accepted since start (every listener of this process). */
long conns_accepted(void);

/* Connections open now whose local port is `port`. -1 if /proc/self/fd cannot be read. */
long conns_open(int port);

/* Shuts down the connection of peer `peer` ("ipv4:127.0.0.1:5555", "ipv6:[::1]:5555") on
 * local port `port`. 0 if one was found and shut down, -1 otherwise. */
int conns_drop_peer(const char *peer, int port);

#endif
