//! [`ConnTable`]: a worker's connections by slot, with generations so a [`ConnId`] of a
//! closed connection never matches the next connection in its slot.

use crate::connection::Connection;
use crate::engine::ConnId;

#[derive(Debug, Default)]
struct Slot {
    generation: u32,
    conn: Option<Connection>,
}

/// The connections of one worker.
#[derive(Debug)]
pub(crate) struct ConnTable {
    worker: u32,
    slots: Vec<Slot>,
    free: Vec<usize>,
}

impl ConnTable {
    /// An empty table for worker `worker`.
    pub(crate) fn new(worker: usize) -> Self {
        Self {
            worker: u32::try_from(worker).unwrap_or(u32::MAX),
            slots: Vec::new(),
            free: Vec::new(),
        }
    }

    /// Reserves a slot and returns the id a connection living there gets.
    pub(crate) fn reserve(&mut self) -> ConnId {
        let slot = self.free.pop().unwrap_or_else(|| {
            self.slots.push(Slot::default());
            self.slots.len() - 1
        });
        ConnId {
            worker: self.worker,
            slot: u32::try_from(slot).unwrap_or(u32::MAX),
            generation: self.slots[slot].generation,
        }
    }

    /// Gives back a reserved slot that got no connection.
    pub(crate) fn unreserve(&mut self, id: ConnId) {
        self.free.push(id.slot as usize);
    }

    /// Puts a connection in its reserved slot.
    pub(crate) fn insert(&mut self, conn: Connection) {
        let slot = conn.id.slot as usize;
        if let Some(s) = self.slots.get_mut(slot) {
            s.conn = Some(conn);
        }
    }

    /// The slot of `id` if that connection is still the one living there.
    pub(crate) fn live_slot(&self, id: ConnId) -> Option<usize> {
        let slot = id.slot as usize;
        let s = self.slots.get(slot)?;
        (id.worker == self.worker && s.generation == id.generation && s.conn.is_some())
            .then_some(slot)
    }

    /// The connection in `slot`.
    pub(crate) fn get(&self, slot: usize) -> Option<&Connection> {
        self.slots.get(slot).and_then(|s| s.conn.as_ref())
    }

    /// The connection in `slot`, mutably.
    pub(crate) fn get_mut(&mut self, slot: usize) -> Option<&mut Connection> {
        self.slots.get_mut(slot).and_then(|s| s.conn.as_mut())
    }

    /// Takes the connection out of `slot` while it is worked on; put it back with
    /// [`ConnTable::put`].
    pub(crate) fn take(&mut self, slot: usize) -> Option<Connection> {
        self.slots.get_mut(slot).and_then(|s| s.conn.take())
    }

    /// Puts a taken connection back.
    pub(crate) fn put(&mut self, slot: usize, conn: Connection) {
        if let Some(s) = self.slots.get_mut(slot) {
            s.conn = Some(conn);
        }
    }

    /// Takes the connection out for good: the slot's generation moves on and the slot
    /// is free for the next connection.
    pub(crate) fn remove(&mut self, slot: usize) -> Option<Connection> {
        let s = self.slots.get_mut(slot)?;
        let conn = s.conn.take()?;
        s.generation = s.generation.wrapping_add(1);
        self.free.push(slot);
        Some(conn)
    }

    /// Number of slots (live or free).
    pub(crate) fn slots(&self) -> usize {
        self.slots.len()
    }

    /// Whether any connection is left.
    pub(crate) fn any(&self) -> bool {
        self.slots.iter().any(|s| s.conn.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reused_slot_gets_a_new_generation() {
        let mut table = ConnTable::new(3);
        let first = table.reserve();
        assert_eq!((first.worker, first.slot, first.generation), (3, 0, 0));
        // Nothing lives there yet.
        assert_eq!(table.live_slot(first), None);
        table.unreserve(first);
        let again = table.reserve();
        assert_eq!(again, first, "an unused reservation keeps its generation");
        assert_eq!(table.remove(0).map(|c| c.id), None);
    }
}
