//! Delivery rules, as pure types: which consumed inputs are done, so that their
//! offsets may be committed. Invariant: an input's offset is released only
//! once every output derived from it, and every input before it in
//! consumption order, is settled — a crash replays, it never skips.

use std::collections::VecDeque;

/// What an input became inside a stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Slot<K, M> {
    /// An item handed to the stage, known by `K`; it is settled when the
    /// stage's output for it comes out, or when a later item's does (the stage
    /// keeps input order, so an item passed over was shed or failed).
    Item(K),
    /// A marker to pass on downstream in order (an end of stream); settled when taken.
    Marker(M),
    /// Nothing to wait for (a dead letter already sent).
    Settled,
}

/// An input in consumption order, with what the stage made of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry<O, K, M, T> {
    /// Where it was read (topic, partition, offset).
    pub origin: O,
    pub slot: Slot<K, M>,
    /// What travels with it to its output (a trace context).
    pub tag: T,
}

/// The inputs a stage has taken and not yet settled, in consumption order.
/// Bounded by what the stage holds in flight: every entry leaves with its own
/// output or with a later one.
#[derive(Debug)]
pub struct InFlight<O, K, M, T> {
    queue: VecDeque<Entry<O, K, M, T>>,
}

impl<O, K, M, T> Default for InFlight<O, K, M, T> {
    fn default() -> Self {
        Self { queue: VecDeque::new() }
    }
}

impl<O, K: PartialEq, M, T> InFlight<O, K, M, T> {
    /// An input was consumed.
    pub fn push(&mut self, origin: O, slot: Slot<K, M>, tag: T) {
        self.queue.push_back(Entry { origin, slot, tag });
    }

    /// The stage's output for item `key` came out: the entries it settles, in
    /// order, ending with `key`'s own (items before it produced nothing: shed
    /// or failed). None when `key` is not in flight (its input was revoked and
    /// replayed elsewhere, say): then nothing is settled, so no offset of an
    /// input still inside the stage is released by mistake.
    pub fn complete(&mut self, key: &K) -> Option<Vec<Entry<O, K, M, T>>> {
        let at = self.queue.iter().position(|e| matches!(&e.slot, Slot::Item(k) if k == key))?;
        Some(self.queue.drain(..=at).collect())
    }

    /// The entries at the front that wait for no output (dead letters,
    /// markers), in order; stops at the first item still in the stage.
    pub fn take_settled_front(&mut self) -> Vec<Entry<O, K, M, T>> {
        let n = self.queue.iter().take_while(|e| !matches!(e.slot, Slot::Item(_))).count();
        self.queue.drain(..n).collect()
    }

    /// Inputs in flight.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}

/// The aggregator's rule, snapshot then commit: the inputs processed since
/// the last checkpoint may be committed only after every output they produced
/// is durable and then the state that covers them (the snapshots) is durable.
/// The order is in the types: [`Processed::checkpoint`] takes the offsets,
/// [`Checkpoint::outputs_durable`] and [`OutputsDurable::snapshots_durable`]
/// must be called in turn before [`Committable::offsets`] gives them up.
#[derive(Debug, Default)]
pub struct Processed {
    /// Per partition, the last offset processed and not yet checkpointed.
    last: std::collections::BTreeMap<i32, i64>,
}

impl Processed {
    /// The input at `offset` of `partition` was processed (outputs published).
    pub fn processed(&mut self, partition: i32, offset: i64) {
        let e = self.last.entry(partition).or_insert(offset);
        *e = (*e).max(offset);
    }

    /// `partition` was revoked: its offsets are not this member's to commit
    /// (its next owner replays from the last commit, which a snapshot covers).
    pub fn revoked(&mut self, partition: i32) {
        self.last.remove(&partition);
    }

    /// Starts a checkpoint with everything processed so far.
    pub fn checkpoint(&mut self) -> Checkpoint {
        Checkpoint(std::mem::take(&mut self.last))
    }
}

/// Offsets waiting for their outputs to be durable.
#[derive(Debug)]
#[must_use = "a checkpoint commits nothing until its outputs and snapshots are durable"]
pub struct Checkpoint(std::collections::BTreeMap<i32, i64>);

/// Offsets whose outputs are durable, waiting for the snapshots.
#[derive(Debug)]
#[must_use = "commit nothing before the snapshots are durable"]
pub struct OutputsDurable(std::collections::BTreeMap<i32, i64>);

/// Offsets that may be committed.
#[derive(Debug)]
pub struct Committable(std::collections::BTreeMap<i32, i64>);

impl Checkpoint {
    /// Every output published before the checkpoint is durable.
    pub fn outputs_durable(self) -> OutputsDurable {
        OutputsDurable(self.0)
    }
}

impl OutputsDurable {
    /// The snapshots written after the outputs are durable.
    pub fn snapshots_durable(self) -> Committable {
        Committable(self.0)
    }
}

impl Committable {
    /// Per partition, the last offset to mark done.
    pub fn offsets(self) -> impl Iterator<Item = (i32, i64)> {
        self.0.into_iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Flight = InFlight<u64, u64, &'static str, ()>;

    #[test]
    fn an_output_settles_its_input_and_the_shed_ones_before_it() {
        let mut f = Flight::default();
        for (off, slot) in [(0, Slot::Item(10)), (1, Slot::Settled), (2, Slot::Item(11)), (3, Slot::Item(12))] {
            f.push(off, slot, ());
        }
        let settled: Vec<u64> = f.complete(&12).unwrap().iter().map(|e| e.origin).collect();
        assert_eq!(settled, [0, 1, 2, 3], "10 and 11 were shed by the stage");
        assert!(f.is_empty());
    }

    #[test]
    fn an_unknown_output_settles_nothing() {
        let mut f = Flight::default();
        f.push(0, Slot::Item(10), ());
        f.push(1, Slot::Item(11), ());
        assert!(f.complete(&99).is_none());
        assert_eq!(f.len(), 2, "frames still inside the stage keep their offsets");
    }

    #[test]
    fn markers_and_dead_letters_at_the_front_settle_without_output() {
        let mut f = Flight::default();
        f.push(0, Slot::Settled, ());
        f.push(1, Slot::Marker("end"), ());
        f.push(2, Slot::Item(10), ());
        f.push(3, Slot::Settled, ());
        let front: Vec<u64> = f.take_settled_front().iter().map(|e| e.origin).collect();
        assert_eq!(front, [0, 1]);
        assert!(f.take_settled_front().is_empty(), "item 10 is still in the stage");
        assert_eq!(f.complete(&10).unwrap().len(), 1);
        assert_eq!(f.take_settled_front().len(), 1);
    }

    /// Random runs of a stage that keeps order and sheds some items: offsets
    /// are released in consumption order, each at most once, and an item's
    /// offset never before its own output (or a later item's) came out.
    #[test]
    fn offsets_are_released_in_order_and_never_early() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut rand = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        for _ in 0..2000 {
            let mut f = Flight::default();
            let n = 1 + rand(40);
            let mut in_stage: VecDeque<u64> = VecDeque::new();
            let mut released: Vec<u64> = Vec::new();
            let mut outputs: Vec<u64> = Vec::new();
            let mut items: Vec<u64> = Vec::new();
            for off in 0..n {
                match rand(4) {
                    0 => f.push(off, Slot::Settled, ()),
                    1 => f.push(off, Slot::Marker("m"), ()),
                    _ => {
                        f.push(off, Slot::Item(off), ());
                        in_stage.push_back(off);
                        items.push(off);
                    }
                }
                // The stage emits or sheds its oldest item now and then; the
                // publisher takes settled fronts now and then.
                while !in_stage.is_empty() && rand(3) == 0 {
                    let k = in_stage.pop_front().unwrap();
                    if rand(4) != 0 {
                        outputs.push(k);
                        released.extend(f.complete(&k).unwrap().iter().map(|e| e.origin));
                    }
                }
                if rand(2) == 0 {
                    released.extend(f.take_settled_front().iter().map(|e| e.origin));
                }
            }
            // A prefix of the consumption order, each offset once.
            assert_eq!(released, (0..released.len() as u64).collect::<Vec<_>>());
            // Every released item had its own output, or a later item's, come out.
            for &r in released.iter().filter(|r| items.contains(r)) {
                assert!(outputs.iter().any(|&o| o >= r), "item {r} released with no output at or after it");
            }
            for k in &in_stage {
                assert!(!released.contains(k), "offset {k} released while its item is in the stage");
            }
        }
    }

    #[test]
    fn a_checkpoint_takes_the_last_offset_of_each_partition_once() {
        let mut p = Processed::default();
        for (part, off) in [(0, 5), (1, 2), (0, 7), (0, 6), (2, 1)] {
            p.processed(part, off);
        }
        p.revoked(2);
        let c = p.checkpoint();
        p.processed(1, 3); // after the checkpoint began: the next one's
        let got: Vec<(i32, i64)> = c.outputs_durable().snapshots_durable().offsets().collect();
        assert_eq!(got, [(0, 7), (1, 2)], "the revoked partition is not ours to commit");
        let next: Vec<(i32, i64)> = p.checkpoint().outputs_durable().snapshots_durable().offsets().collect();
        assert_eq!(next, [(1, 3)]);
        assert_eq!(p.checkpoint().outputs_durable().snapshots_durable().offsets().count(), 0);
    }
}
