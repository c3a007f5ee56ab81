//! Picking TCP ports that are free right now on 127.0.0.1.
//!
//! A port found this way can still be taken by someone else before redis-server binds it;
//! callers detect that ("Address already in use", or another server answering) and retry.

use std::net::{Ipv4Addr, TcpListener};

/// Offset of the Redis Cluster bus port from the client port (fixed by Redis).
pub(crate) const CLUSTER_BUS_OFFSET: u16 = 10_000;

/// A port on 127.0.0.1 that the kernel just handed out and that is free again now.
pub(crate) fn free_port() -> u16 {
    bind_any()
        .local_addr()
        .unwrap_or_else(|err| panic!("cannot read the port of a 127.0.0.1:0 listener: {err}"))
        .port()
}

/// A free port `p` such that `p + 10000` (the cluster bus port) is free as well.
pub(crate) fn free_cluster_port() -> u16 {
    for _ in 0..100 {
        // Keep the first listener alive while probing the bus port, so the kernel does not
        // hand the same port out again within this loop.
        let listener = bind_any();
        let Ok(addr) = listener.local_addr() else {
            continue;
        };
        let Some(bus) = addr.port().checked_add(CLUSTER_BUS_OFFSET) else {
            continue;
        };
        if TcpListener::bind((Ipv4Addr::LOCALHOST, bus)).is_ok() {
            return addr.port();
        }
    }
    panic!("found no free port P on 127.0.0.1 with P + {CLUSTER_BUS_OFFSET} free as well");
}

fn bind_any() -> TcpListener {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap_or_else(|err| panic!("cannot bind 127.0.0.1:0 to find a free port: {err}"))
}
