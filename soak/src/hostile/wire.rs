//! What hostile clients put on the wire, and how their sockets are opened.

use std::io;
use std::net::SocketAddr;

use bytes::{Bytes, BytesMut};
use mio::net::TcpStream;
use shared::{Frame, PROTOCOL_VERSION};
use socket2::{Domain, Socket, Type};

use super::{FLOOD_BATCH, NON_READER_RCVBUF, STALLED_SNDBUF};
use crate::kind::Kind;

pub(super) fn open_socket(addr: SocketAddr, kind: Kind) -> io::Result<TcpStream> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_nonblocking(true)?;
    socket.set_tcp_nodelay(true)?;
    if kind == Kind::NonReader {
        socket.set_recv_buffer_size(NON_READER_RCVBUF)?;
    }
    if kind == Kind::Stalled {
        socket.set_send_buffer_size(STALLED_SNDBUF)?;
    }
    match socket.connect(&addr.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc_einprogress()) => {}
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
        Err(e) => return Err(e),
    }
    Ok(TcpStream::from_std(std::net::TcpStream::from(socket)))
}

/// `EINPROGRESS` on Linux (a non-blocking connect under way).
pub(super) fn libc_einprogress() -> i32 {
    115
}

pub(super) fn hello() -> Frame {
    Frame::Hello {
        version: PROTOCOL_VERSION,
    }
}

/// Appends a frame; frames built here always fit their wire form.
pub(super) fn put_frame(out: &mut BytesMut, frame: &Frame) {
    let _ = frame.encode(out);
}

pub(super) fn echo_frame(payload: &[u8]) -> Bytes {
    let mut out = BytesMut::new();
    put_frame(
        &mut out,
        &Frame::Echo {
            payload: Bytes::copy_from_slice(payload),
        },
    );
    out.freeze()
}

pub(super) fn fill_flood(out: &mut BytesMut, requests: &mut u64) {
    while out.len() < FLOOD_BATCH {
        put_frame(
            out,
            &Frame::Echo {
                payload: Bytes::from_static(b"flood-flood-flood"),
            },
        );
        *requests += 1;
    }
}
