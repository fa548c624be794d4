//! [`Chunks`]: a queue of bytes kept in fixed-size chunks. Bytes are appended at the
//! back and dropped from the front; a chunk is allocated when the last one is full and
//! freed when its last byte is dropped, so every allocation has the same size and a
//! freed chunk fits the next one anywhere, in any room: the heap does not fragment
//! however messages come and go, and what a queue holds is its chunk count times the
//! chunk size.

use std::collections::VecDeque;

/// Bytes per chunk.
pub(in crate::engine::memory) const CHUNK: usize = 4096;

#[derive(Debug, Default)]
pub(in crate::engine::memory) struct Chunks {
    /// Full chunks, then the last one, filling; each allocated with `CHUNK` bytes.
    chunks: VecDeque<Vec<u8>>,
    /// Bytes of the first chunk already dropped.
    head: usize,
    /// Bytes queued.
    len: usize,
}

impl Chunks {
    /// Bytes queued.
    pub(in crate::engine::memory) fn len(&self) -> usize {
        self.len
    }

    /// Bytes allocated: the chunks and the table that holds them.
    pub(in crate::engine::memory) fn reserved(&self) -> usize {
        self.chunks.len() * CHUNK + self.chunks.capacity() * std::mem::size_of::<Vec<u8>>()
    }

    /// Appends `data`.
    pub(in crate::engine::memory) fn push(&mut self, mut data: &[u8]) {
        self.len += data.len();
        while !data.is_empty() {
            if self.chunks.back().is_none_or(|last| last.len() == CHUNK) {
                self.chunks.push_back(Vec::with_capacity(CHUNK));
            }
            if let Some(last) = self.chunks.back_mut() {
                let take = (CHUNK - last.len()).min(data.len());
                last.extend_from_slice(&data[..take]);
                data = &data[take..];
            }
        }
    }

    /// Drops the first `n` bytes (at most all of them).
    pub(in crate::engine::memory) fn pop(&mut self, n: usize) {
        let n = n.min(self.len);
        self.len -= n;
        if self.len == 0 {
            self.clear();
            return;
        }
        self.head += n;
        while let Some(first) = self.chunks.front() {
            if first.len() == CHUNK && self.head >= CHUNK {
                self.head -= CHUNK;
                self.chunks.pop_front();
            } else {
                break;
            }
        }
    }

    /// Drops everything and frees every chunk.
    pub(in crate::engine::memory) fn clear(&mut self) {
        *self = Self::default();
    }

    /// A copy of the `n` bytes from `offset` (counted from the first byte queued).
    pub(in crate::engine::memory) fn copy(&self, offset: usize, n: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(n);
        let mut at = self.head + offset;
        for chunk in &self.chunks {
            if out.len() == n {
                break;
            }
            if at >= chunk.len() {
                at -= chunk.len();
                continue;
            }
            let take = (chunk.len() - at).min(n - out.len());
            out.extend_from_slice(&chunk[at..at + take]);
            at = 0;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_span_chunks_and_come_back_whole() {
        let mut q = Chunks::default();
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        q.push(&data);
        assert_eq!(q.len(), 10_000);
        assert!(q.reserved() >= 3 * CHUNK);
        assert_eq!(q.copy(0, 10_000), data);
        assert_eq!(q.copy(4_000, 200), data[4_000..4_200]);
        q.pop(5_000);
        assert_eq!(q.len(), 5_000);
        assert_eq!(q.copy(0, 5_000), data[5_000..]);
        // The first chunk went once all its bytes were dropped.
        assert_eq!(q.chunks.len(), 2);
        q.push(b"tail");
        assert_eq!(q.copy(5_000, 4), b"tail");
        q.pop(usize::MAX);
        assert_eq!(q.len(), 0);
        assert_eq!(q.chunks.len(), 0, "an emptied queue holds no chunk");
        assert_eq!(q.reserved(), 0);
    }
}
