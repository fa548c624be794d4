//! [`Outbound`]: a connection's queue of encoded frames, written with vectored writes.
//! Frames are shared `Bytes`: a room message encoded once sits in every member's queue.

use std::collections::VecDeque;
use std::io::{self, IoSlice, Write};

use bytes::{Buf, Bytes};

/// Most buffers handed to one `write_vectored` call.
const MAX_IOVECS: usize = 64;

/// Queued output of one connection.
#[derive(Debug, Default)]
pub(crate) struct Outbound {
    queue: VecDeque<Bytes>,
    bytes: usize,
    /// Whether the first queued frame has been partly written.
    front_partial: bool,
}

impl Outbound {
    /// Queued bytes.
    pub(crate) fn len(&self) -> usize {
        self.bytes
    }

    /// Whether nothing is queued.
    pub(crate) fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Appends a frame.
    pub(crate) fn push(&mut self, bytes: Bytes) {
        self.bytes += bytes.len();
        self.queue.push_back(bytes);
    }

    /// Drops everything queued except a partly written first frame, so the stream the
    /// peer reads stays decodable.
    pub(crate) fn drop_unstarted(&mut self) {
        let keep = usize::from(self.front_partial);
        self.queue.truncate(keep);
        self.bytes = self.queue.front().map_or(0, Bytes::len);
    }

    /// Writes until the queue is empty or `sink` would block; returns the bytes written.
    pub(crate) fn write_to(&mut self, sink: &mut impl Write) -> io::Result<usize> {
        let mut written = 0;
        while !self.queue.is_empty() {
            let written_now = match self.queue.as_slices() {
                // One frame (an echo, a reply): a plain write, which the kernel takes
                // on a shorter path than a vector of one.
                ([only], []) => sink.write(only),
                _ => {
                    let mut iov = [IoSlice::new(&[]); MAX_IOVECS];
                    let mut count = 0;
                    for (slot, buf) in iov.iter_mut().zip(self.queue.iter()) {
                        *slot = IoSlice::new(buf);
                        count += 1;
                    }
                    sink.write_vectored(&iov[..count])
                }
            };
            match written_now {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    written += n;
                    self.consume(n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(written)
    }

    fn consume(&mut self, mut n: usize) {
        self.bytes -= n.min(self.bytes);
        while n > 0 {
            let Some(front) = self.queue.front_mut() else {
                break;
            };
            if front.len() <= n {
                n -= front.len();
                self.queue.pop_front();
                self.front_partial = false;
            } else {
                front.advance(n);
                self.front_partial = true;
                n = 0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sink that takes at most `room` bytes, then would block.
    struct Trickle {
        taken: Vec<u8>,
        room: usize,
    }

    impl Write for Trickle {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.room == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let n = buf.len().min(self.room);
            self.room -= n;
            self.taken.extend_from_slice(&buf[..n]);
            Ok(n)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_partly_written_frame_survives_dropping_the_rest() {
        let mut out = Outbound::default();
        out.push(Bytes::from_static(b"abcdef"));
        out.push(Bytes::from_static(b"ghi"));
        let mut sink = Trickle {
            taken: Vec::new(),
            room: 4,
        };
        assert_eq!(out.write_to(&mut sink).unwrap(), 4);
        out.drop_unstarted();
        assert_eq!(out.len(), 2, "the rest of the started frame stays");
        sink.room = 100;
        out.write_to(&mut sink).unwrap();
        assert_eq!(sink.taken, b"abcdef");
        assert!(out.is_empty());
    }

    #[test]
    fn a_single_frame_written_in_parts_goes_out_whole_and_in_order() {
        let mut out = Outbound::default();
        out.push(Bytes::from_static(b"abcdef"));
        let mut sink = Trickle {
            taken: Vec::new(),
            room: 2,
        };
        assert_eq!(out.write_to(&mut sink).unwrap(), 2);
        assert_eq!(out.len(), 4);
        out.drop_unstarted();
        assert_eq!(out.len(), 4, "a started frame is kept");
        sink.room = 100;
        assert_eq!(out.write_to(&mut sink).unwrap(), 4);
        assert_eq!(sink.taken, b"abcdef");
        assert!(out.is_empty());
    }

    /// A sink that takes everything and counts how it was called.
    #[derive(Default)]
    struct Counting {
        taken: Vec<u8>,
        plain: usize,
        vectored: usize,
    }

    impl Write for Counting {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.plain += 1;
            self.taken.extend_from_slice(buf);
            Ok(buf.len())
        }

        fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
            self.vectored += 1;
            let before = self.taken.len();
            for buf in bufs {
                self.taken.extend_from_slice(buf);
            }
            Ok(self.taken.len() - before)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn one_frame_goes_out_in_a_plain_write_and_several_in_one_vectored_write() {
        let mut out = Outbound::default();
        out.push(Bytes::from_static(b"abc"));
        let mut sink = Counting::default();
        assert_eq!(out.write_to(&mut sink).unwrap(), 3);
        assert_eq!((sink.plain, sink.vectored), (1, 0));

        out.push(Bytes::from_static(b"de"));
        out.push(Bytes::from_static(b"fgh"));
        assert_eq!(out.write_to(&mut sink).unwrap(), 5);
        assert_eq!((sink.plain, sink.vectored), (1, 1));
        assert_eq!(sink.taken, b"abcdefgh");
        assert!(out.is_empty());
    }

    #[test]
    fn an_unstarted_queue_is_dropped_whole() {
        let mut out = Outbound::default();
        out.push(Bytes::from_static(b"abc"));
        out.drop_unstarted();
        assert_eq!(out.len(), 0);
        assert!(out.is_empty());
    }
}
