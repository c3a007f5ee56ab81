//! Picking TCP ports that are free right now on 127.0.0.1.
//!
//! A port found this way can still be taken by someone else before redis-server binds it;
//! callers detect that ("Address already in use", or another server answering) and retry.

use std::net::{Ipv4Addr, TcpListener};

/// A port on 127.0.0.1 that the kernel just handed out and that is free again now.
pub(crate) fn free_port() -> u16 {
    bind_any()
        .local_addr()
        .unwrap_or_else(|err| panic!("cannot read the port of a 127.0.0.1:0 listener: {err}"))
        .port()
}

fn bind_any() -> TcpListener {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap_or_else(|err| panic!("cannot bind 127.0.0.1:0 to find a free port: {err}"))
}
