//! The order in which waiting scenes get a denoising slot: highest priority first; within a
//! priority, owners (API keys) take turns, one scene each, so one key's hundred tasks do not
//! starve another key's one; each owner's scenes in arrival order. Only scenes that may start
//! now are taken ([`FairQueue::pop_where`]: a task's later scenes wait for its earlier ones,
//! see `schedule.rs`); one that may not is passed over, keeping its place and its owner's turn.

use std::cmp::Reverse;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

type Owner = Option<Arc<str>>;

/// One priority's owners, in turn order, each with its own queue.
struct Level<T> {
    turns: VecDeque<Owner>,
    queues: HashMap<Owner, VecDeque<T>>,
}

/// Waiting items, popped by priority, then by owners' turns, then by arrival.
pub struct FairQueue<T> {
    levels: BTreeMap<Reverse<u8>, Level<T>>,
    len: usize,
}

impl<T> Default for FairQueue<T> {
    fn default() -> Self {
        FairQueue {
            levels: BTreeMap::new(),
            len: 0,
        }
    }
}

impl<T> FairQueue<T> {
    /// Adds `item` behind `owner`'s earlier items at `priority`.
    pub fn push(&mut self, priority: u8, owner: Owner, item: T) {
        let level = self
            .levels
            .entry(Reverse(priority))
            .or_insert_with(|| Level {
                turns: VecDeque::new(),
                queues: HashMap::new(),
            });
        let queue = level.queues.entry(owner.clone()).or_default();
        if queue.is_empty() {
            level.turns.push_back(owner);
        }
        queue.push_back(item);
        self.len += 1;
    }

    /// The next item that `ready` accepts: from the highest priority holding one, the first
    /// owner in turn order holding one, that owner's earliest such item. An owner served goes
    /// to the back of its level's turns; owners passed over keep their places, and items passed
    /// over keep theirs. A lower priority is served only when no higher item is ready (the
    /// slot would otherwise stay empty).
    pub fn pop_where(&mut self, mut ready: impl FnMut(&T) -> bool) -> Option<T> {
        let (key, turn, pos) = self.levels.iter().find_map(|(key, level)| {
            level.turns.iter().enumerate().find_map(|(turn, owner)| {
                let pos = level.queues.get(owner)?.iter().position(&mut ready)?;
                Some((*key, turn, pos))
            })
        })?;
        let level = self.levels.get_mut(&key)?;
        let owner = level.turns.remove(turn)?;
        let queue = level.queues.get_mut(&owner)?;
        let item = queue.remove(pos);
        if queue.is_empty() {
            level.queues.remove(&owner);
        } else {
            level.turns.push_back(owner);
        }
        if level.turns.is_empty() {
            self.levels.remove(&key);
        }
        self.len -= usize::from(item.is_some());
        item
    }

    /// Keeps only the items `keep` accepts (dropping cancelled tasks' scenes).
    pub fn retain(&mut self, mut keep: impl FnMut(&T) -> bool) {
        let mut len = 0;
        self.levels.retain(|_, level| {
            level.queues.retain(|_, q| {
                q.retain(&mut keep);
                len += q.len();
                !q.is_empty()
            });
            let queues = &level.queues;
            level.turns.retain(|o| queues.contains_key(o));
            !level.turns.is_empty()
        });
        self.len = len;
    }

    /// Some item, if any waits (which one is unspecified).
    pub fn any(&self) -> Option<&T> {
        self.levels
            .values()
            .flat_map(|level| level.queues.values())
            .find_map(|queue| queue.front())
    }

    /// Items waiting.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when nothing waits.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(name: &str) -> Owner {
        Some(name.into())
    }

    #[test]
    fn owners_take_turns_and_keep_their_own_order() {
        let mut q = FairQueue::default();
        for i in 0..100 {
            q.push(5, owner("a"), format!("a{i}"));
        }
        q.push(5, owner("b"), "b0".to_string());
        q.push(5, owner("b"), "b1".to_string());
        q.push(5, None, "anon".to_string());
        assert_eq!(q.len(), 103);
        let first: Vec<String> = (0..6).filter_map(|_| q.pop_where(|_| true)).collect();
        assert_eq!(first, ["a0", "b0", "anon", "a1", "b1", "a2"]);
        assert_eq!(q.len(), 97);
        let rest: Vec<String> = std::iter::from_fn(|| q.pop_where(|_| true)).collect();
        assert_eq!(rest, (3..100).map(|i| format!("a{i}")).collect::<Vec<_>>());
        assert!(q.is_empty() && q.pop_where(|_| true).is_none());
    }

    #[test]
    fn higher_priority_goes_first_whoever_asks() {
        let mut q = FairQueue::default();
        q.push(5, owner("a"), 1);
        q.push(9, owner("b"), 2);
        q.push(0, owner("c"), 3);
        q.push(9, owner("a"), 4);
        let order: Vec<i32> = std::iter::from_fn(|| q.pop_where(|_| true)).collect();
        assert_eq!(order, [2, 4, 1, 3]);
    }

    #[test]
    fn items_not_ready_are_passed_over_keeping_their_places() {
        let mut q = FairQueue::default();
        for i in 0..3 {
            q.push(5, owner("a"), format!("a{i}"));
            q.push(5, owner("b"), format!("b{i}"));
        }
        q.push(1, owner("c"), "c0".to_string());
        // a's turn, but only its second item is ready: taken; b's turn comes next.
        assert_eq!(q.pop_where(|s| s != "a0").as_deref(), Some("a1"));
        // None of b's is ready: passed over, a is served, and b keeps the next turn.
        assert_eq!(q.pop_where(|s| s.starts_with('a')).as_deref(), Some("a0"));
        assert_eq!(q.pop_where(|s| s != "b0").as_deref(), Some("b1"));
        // Nothing ready at priority 5: the lower priority gets the slot.
        assert_eq!(q.pop_where(|s| s.starts_with('c')).as_deref(), Some("c0"));
        assert!(q.pop_where(|_| false).is_none());
        assert_eq!(q.len(), 3);
        let rest: Vec<String> = std::iter::from_fn(|| q.pop_where(|_| true)).collect();
        assert_eq!(rest, ["a2", "b0", "b2"]);
        assert!(q.is_empty());
    }

    #[test]
    fn retain_drops_items_and_empty_owners() {
        let mut q = FairQueue::default();
        for i in 0..4 {
            q.push(5, owner("a"), i);
            q.push(5, owner("b"), 10 + i);
        }
        q.retain(|&i| i >= 10 || i == 3);
        assert_eq!(q.len(), 5);
        let order: Vec<i32> = std::iter::from_fn(|| q.pop_where(|_| true)).collect();
        assert_eq!(order, [3, 10, 11, 12, 13]);
    }
}
