//! The order in which waiting scenes get a denoising slot: highest priority first; within a
//! priority, owners (API keys) take turns, one scene each, so one key's hundred tasks do not
//! starve another key's one; each owner's scenes in arrival order.

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

    /// The next item: from the highest priority present, the owner whose turn it is.
    pub fn pop(&mut self) -> Option<T> {
        let mut entry = self.levels.first_entry()?;
        let level = entry.get_mut();
        let owner = level.turns.pop_front()?;
        let queue = level.queues.get_mut(&owner)?;
        let item = queue.pop_front();
        if queue.is_empty() {
            level.queues.remove(&owner);
        } else {
            level.turns.push_back(owner);
        }
        if level.turns.is_empty() {
            entry.remove();
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
        let first: Vec<String> = (0..6).filter_map(|_| q.pop()).collect();
        assert_eq!(first, ["a0", "b0", "anon", "a1", "b1", "a2"]);
        assert_eq!(q.len(), 97);
        let rest: Vec<String> = std::iter::from_fn(|| q.pop()).collect();
        assert_eq!(rest, (3..100).map(|i| format!("a{i}")).collect::<Vec<_>>());
        assert!(q.is_empty() && q.pop().is_none());
    }

    #[test]
    fn higher_priority_goes_first_whoever_asks() {
        let mut q = FairQueue::default();
        q.push(5, owner("a"), 1);
        q.push(9, owner("b"), 2);
        q.push(0, owner("c"), 3);
        q.push(9, owner("a"), 4);
        let order: Vec<i32> = std::iter::from_fn(|| q.pop()).collect();
        assert_eq!(order, [2, 4, 1, 3]);
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
        let order: Vec<i32> = std::iter::from_fn(|| q.pop()).collect();
        assert_eq!(order, [3, 10, 11, 12, 13]);
    }
}
