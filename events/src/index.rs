//! [`IdMap`]: a map from ids to entities that answers lookups by hashing and iterates in id
//! order.
//!
//! A tenant holds up to millions of licences and users, and every event looks several of them
//! up: an ordered map pays a dozen key comparisons and cache misses per lookup, a hash map one
//! probe. Listings page through ids in order, so each part also keeps its ids sorted — sorted
//! when first asked for after an id was added, not on every insert: a replay adds a million
//! licences and users and never lists them, and a sorted vector is a third of the memory of an
//! ordered set (entities are never removed: removal is a flag).
//!
//! The map is cut into [`SHARDS`] parts by the first byte of the id's order, each behind an
//! `Arc`: cloning a tenant (a what-if preview, a snapshot taken while the writer goes on)
//! copies 256 pointers, and the first change to a shared part copies that part alone, about a
//! 256th of the map. Parts follow each other in id order, so iteration stays in id order.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, OnceLock};

/// Parts of a map.
pub const SHARDS: usize = 256;

/// A key's part: the first byte of its order, so that every key of part `n` orders before
/// every key of part `n + 1`.
pub trait ShardKey {
    fn shard(&self) -> u8;
}

/// Plain numbers as keys, for the tests: their first byte.
#[cfg(test)]
impl ShardKey for u32 {
    fn shard(&self) -> u8 {
        (self >> 24) as u8
    }
}

/// One part: hashed for lookups, ordered for iteration.
#[derive(Clone, Debug)]
struct Shard<K, V> {
    /// foldhash: randomly seeded like std's `RandomState`, several times faster on 16-byte ids.
    entries: HashMap<K, V, foldhash::fast::RandomState>,
    /// The ids of `entries` in order, once asked for since the last id was added.
    order: OnceLock<Vec<K>>,
}

impl<K: Ord + Hash + Copy, V> Shard<K, V> {
    /// Add or replace the entity with this id; returns the one it replaced.
    fn insert(&mut self, id: K, value: V) -> Option<V> {
        let previous = self.entries.insert(id, value);
        if previous.is_none() {
            self.order.take();
        }
        previous
    }

    /// The ids in order, sorted now if an id was added since they last were.
    fn order(&self) -> &[K] {
        self.order.get_or_init(|| {
            let mut ids: Vec<K> = self.entries.keys().copied().collect();
            ids.sort_unstable();
            ids
        })
    }

    /// The ids strictly after `after` (all, for `None`) in order.
    fn order_after(&self, after: Option<K>) -> &[K] {
        let order = self.order();
        let first = after.map_or(0, |id| order.partition_point(|k| *k <= id));
        &order[first..]
    }
}

impl<K, V> Default for Shard<K, V> {
    fn default() -> Self {
        Shard {
            entries: HashMap::default(),
            order: OnceLock::new(),
        }
    }
}

/// Ids to entities: hashed for lookups, ordered for iteration, shared part by part between
/// clones until changed.
#[derive(Clone, Debug)]
pub struct IdMap<K, V> {
    shards: Vec<Arc<Shard<K, V>>>,
    len: usize,
}

impl<K, V> Default for IdMap<K, V> {
    fn default() -> Self {
        let empty = Arc::new(Shard::default());
        IdMap {
            shards: vec![empty; SHARDS],
            len: 0,
        }
    }
}

impl<K: Ord + Hash + Copy + ShardKey, V: PartialEq> PartialEq for IdMap<K, V> {
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len
            && self
                .shards
                .iter()
                .zip(&other.shards)
                .all(|(a, b)| Arc::ptr_eq(a, b) || a.entries == b.entries)
    }
}

impl<K: Ord + Hash + Copy + ShardKey, V: Eq> Eq for IdMap<K, V> {}

impl<K: Ord + Hash + Copy + ShardKey, V> IdMap<K, V> {
    /// An empty map.
    pub fn new() -> Self {
        IdMap::default()
    }

    fn part(&self, id: &K) -> &Shard<K, V> {
        &self.shards[usize::from(id.shard())]
    }

    /// The entity with this id.
    pub fn get(&self, id: &K) -> Option<&V> {
        self.part(id).entries.get(id)
    }

    /// Whether an entity has this id.
    pub fn contains_key(&self, id: &K) -> bool {
        self.part(id).entries.contains_key(id)
    }

    /// Number of entities.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Every entity in id order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&K, &V)> + Clone + '_ {
        self.shards.iter().flat_map(|part| {
            part.order()
                .iter()
                .filter_map(|id| part.entries.get_key_value(id))
        })
    }

    /// Every entity in id order.
    pub fn values(&self) -> impl DoubleEndedIterator<Item = &V> + Clone + '_ {
        self.iter().map(|(_, v)| v)
    }

    /// Every id in order.
    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &K> + Clone + '_ {
        self.shards.iter().flat_map(|part| part.order().iter())
    }

    /// The entities with ids strictly after `after` (all, for `None`), in id order: a page's
    /// cursor.
    pub fn iter_after(&self, after: Option<K>) -> impl Iterator<Item = (&K, &V)> + Clone + '_ {
        let first = after.map_or(0, |id| usize::from(id.shard()));
        self.shards[first..]
            .iter()
            .enumerate()
            .flat_map(move |(index, part)| {
                // Only the cursor's own part starts after it; the parts after it start at once.
                part.order_after(after.filter(|_| index == 0))
                    .iter()
                    .filter_map(|id| part.entries.get_key_value(id))
            })
    }
}

impl<K: Ord + Hash + Copy + ShardKey, V: Clone> IdMap<K, V> {
    /// The part of `id`, to change: copied first if a clone of the map shares it.
    fn part_mut(&mut self, id: &K) -> &mut Shard<K, V> {
        Arc::make_mut(&mut self.shards[usize::from(id.shard())])
    }

    /// The entity with this id, to change it.
    pub fn get_mut(&mut self, id: &K) -> Option<&mut V> {
        // One lookup: a miss on a shared part copies that part for nothing, which changes
        // nothing it holds.
        self.part_mut(id).entries.get_mut(id)
    }

    /// Add or replace the entity with this id; returns the one it replaced.
    pub fn insert(&mut self, id: K, value: V) -> Option<V> {
        let previous = self.part_mut(&id).insert(id, value);
        if previous.is_none() {
            self.len += 1;
        }
        previous
    }
}

/// `map[&id]`, for callers that know the id exists (tests, tools); panics otherwise, as
/// `BTreeMap` does.
impl<K: Ord + Hash + Copy + ShardKey, V> std::ops::Index<&K> for IdMap<K, V> {
    type Output = V;

    fn index(&self, id: &K) -> &V {
        self.get(id).expect("no entry with this id")
    }
}

impl<'a, K: Ord + Hash + Copy + ShardKey, V> IntoIterator for &'a IdMap<K, V> {
    type Item = (&'a K, &'a V);
    type IntoIter = Box<dyn Iterator<Item = (&'a K, &'a V)> + 'a>;

    fn into_iter(self) -> Self::IntoIter {
        Box::new(self.iter())
    }
}

impl<K: Ord + Hash + Copy + ShardKey, V: Clone> FromIterator<(K, V)> for IdMap<K, V> {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(items: I) -> Self {
        // Each part built on its own (a snapshot's million licences): no sharing to check.
        let mut parts: Vec<Shard<K, V>> = (0..SHARDS).map(|_| Shard::default()).collect();
        let mut len = 0;
        for (k, v) in items {
            if parts[usize::from(k.shard())].insert(k, v).is_none() {
                len += 1;
            }
        }
        IdMap {
            shards: parts.into_iter().map(Arc::new).collect(),
            len,
        }
    }
}

/// Serialised as its entries in id order, for snapshots.
impl<K: Ord + Hash + Copy + ShardKey + serde::Serialize, V: serde::Serialize> serde::Serialize
    for IdMap<K, V>
{
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let mut seq = serializer.serialize_seq(Some(self.len()))?;
        for entry in self.iter() {
            seq.serialize_element(&entry)?;
        }
        seq.end()
    }
}

impl<'de, K, V> serde::Deserialize<'de> for IdMap<K, V>
where
    K: Ord + Hash + Copy + ShardKey + serde::Deserialize<'de>,
    V: Clone + serde::Deserialize<'de>,
{
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let entries: Vec<(K, V)> = serde::Deserialize::deserialize(deserializer)?;
        Ok(entries.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iterates_in_key_order_whatever_the_insertion_order() {
        let map: IdMap<u32, &str> = [(3, "c"), (1, "a"), (2, "b")].into_iter().collect();
        assert_eq!(map.keys().copied().collect::<Vec<_>>(), vec![1, 2, 3]);
        assert_eq!(
            map.iter_after(Some(1)).map(|(k, _)| *k).collect::<Vec<_>>(),
            vec![2, 3]
        );
        assert_eq!(map.iter_after(None).count(), 3);
    }

    #[test]
    fn iterates_in_key_order_across_parts_and_pages_from_any_key() {
        // Keys in many parts (their first byte), inserted in a scrambled order.
        let keys: Vec<u32> = (0..2000u32)
            .map(|i| i.wrapping_mul(2_654_435_761))
            .collect();
        let map: IdMap<u32, u32> = keys.iter().map(|k| (*k, k / 2)).collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(map.keys().copied().collect::<Vec<_>>(), sorted);
        assert_eq!(map.len(), 2000);
        let reversed: Vec<u32> = map.keys().rev().copied().collect();
        assert_eq!(reversed, sorted.iter().rev().copied().collect::<Vec<_>>());
        for cursor in [sorted[0], sorted[999], sorted[1999], 0, u32::MAX] {
            let expected: Vec<u32> = sorted.iter().copied().filter(|k| *k > cursor).collect();
            let paged: Vec<u32> = map.iter_after(Some(cursor)).map(|(k, _)| *k).collect();
            assert_eq!(paged, expected, "after {cursor}");
        }
    }

    #[test]
    fn a_clone_keeps_what_it_had_when_the_original_changes() {
        let mut original: IdMap<u32, u32> = (0..1000u32).map(|i| (i << 22, i)).collect();
        let copy = original.clone();
        original.insert(5 << 22, 500);
        original.insert(3, 3);
        if let Some(value) = original.get_mut(&(7 << 22)) {
            *value = 700;
        }
        assert_eq!(copy.get(&(5 << 22)), Some(&5));
        assert_eq!(copy.get(&(7 << 22)), Some(&7));
        assert_eq!(copy.get(&3), None);
        assert_eq!(copy.len(), 1000);
        assert_eq!(original.get(&(5 << 22)), Some(&500));
        assert_eq!(original.get(&(7 << 22)), Some(&700));
        assert_eq!(original.len(), 1001);
        assert_ne!(original, copy);
        let mut again = copy.clone();
        assert_eq!(again, copy);
        again.insert(5 << 22, 5);
        assert_eq!(
            again, copy,
            "replacing an entity by an equal one changes nothing"
        );
    }

    #[test]
    fn an_id_added_after_a_listing_shows_in_order_in_the_next_one_and_not_in_a_clone() {
        let mut map: IdMap<u32, u32> = [(30, 3), (10, 1)].into_iter().collect();
        assert_eq!(map.keys().copied().collect::<Vec<_>>(), vec![10, 30]);
        let copy = map.clone();
        map.insert(20, 2);
        if let Some(value) = map.get_mut(&10) {
            *value = 100;
        }
        assert_eq!(map.keys().copied().collect::<Vec<_>>(), vec![10, 20, 30]);
        assert_eq!(
            map.iter_after(Some(10))
                .map(|(k, v)| (*k, *v))
                .collect::<Vec<_>>(),
            vec![(20, 2), (30, 3)]
        );
        assert_eq!(map.values().copied().collect::<Vec<_>>(), vec![100, 2, 3]);
        assert_eq!(copy.keys().copied().collect::<Vec<_>>(), vec![10, 30]);
        assert_eq!(copy.iter_after(Some(10)).count(), 1);
    }

    #[test]
    fn replacing_an_entity_keeps_one_id_in_the_order() {
        let mut map = IdMap::new();
        map.insert(7, "first");
        assert_eq!(map.insert(7, "second"), Some("first"));
        assert_eq!(map.len(), 1);
        assert_eq!(map.values().copied().collect::<Vec<_>>(), vec!["second"]);
    }

    #[test]
    fn maps_with_the_same_entities_are_equal_whatever_the_insertion_order() {
        let a: IdMap<u32, u32> = [(1, 10), (2, 20)].into_iter().collect();
        let b: IdMap<u32, u32> = [(2, 20), (1, 10)].into_iter().collect();
        assert_eq!(a, b);
        let c: IdMap<u32, u32> = [(1, 10), (2, 21)].into_iter().collect();
        assert_ne!(a, c);
    }
}
