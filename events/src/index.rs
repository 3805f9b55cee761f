//! [`IdMap`]: a map from ids to entities that answers lookups by hashing and iterates in id
//! order.
//!
//! A tenant holds up to millions of licences and users, and every event looks several of them
//! up: an ordered map pays a dozen key comparisons and cache misses per lookup, a hash map one
//! probe. Listings page through ids in order, so the ids are also kept in an ordered set,
//! touched only when an entity is added (entities are never removed: removal is a flag).

use std::collections::{BTreeSet, HashMap};
use std::hash::Hash;
use std::ops::Bound;

/// Ids to entities: hashed for lookups, ordered for iteration.
#[derive(Clone, Debug)]
pub struct IdMap<K, V> {
    /// foldhash: randomly seeded like std's `RandomState`, several times faster on 16-byte ids.
    entries: HashMap<K, V, foldhash::fast::RandomState>,
    order: BTreeSet<K>,
}

impl<K, V> Default for IdMap<K, V> {
    fn default() -> Self {
        IdMap {
            entries: HashMap::default(),
            order: BTreeSet::new(),
        }
    }
}

impl<K: Ord + Hash + Copy, V: PartialEq> PartialEq for IdMap<K, V> {
    fn eq(&self, other: &Self) -> bool {
        self.entries == other.entries
    }
}

impl<K: Ord + Hash + Copy, V: Eq> Eq for IdMap<K, V> {}

impl<K: Ord + Hash + Copy, V> IdMap<K, V> {
    /// An empty map.
    pub fn new() -> Self {
        IdMap::default()
    }

    /// The entity with this id.
    pub fn get(&self, id: &K) -> Option<&V> {
        self.entries.get(id)
    }

    /// The entity with this id, to change it.
    pub fn get_mut(&mut self, id: &K) -> Option<&mut V> {
        self.entries.get_mut(id)
    }

    /// Whether an entity has this id.
    pub fn contains_key(&self, id: &K) -> bool {
        self.entries.contains_key(id)
    }

    /// Add or replace the entity with this id; returns the one it replaced.
    pub fn insert(&mut self, id: K, value: V) -> Option<V> {
        let previous = self.entries.insert(id, value);
        if previous.is_none() {
            self.order.insert(id);
        }
        previous
    }

    /// Number of entities.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every entity in id order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&K, &V)> + Clone + '_ {
        self.order
            .iter()
            .filter_map(|id| self.entries.get_key_value(id))
    }

    /// Every entity in id order.
    pub fn values(&self) -> impl DoubleEndedIterator<Item = &V> + Clone + '_ {
        self.iter().map(|(_, v)| v)
    }

    /// Every id in order.
    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &K> + Clone + '_ {
        self.order.iter()
    }

    /// The entities with ids strictly after `after` (all, for `None`), in id order: a page's
    /// cursor.
    pub fn iter_after(&self, after: Option<K>) -> impl Iterator<Item = (&K, &V)> + Clone + '_ {
        let start = after.map_or(Bound::Unbounded, Bound::Excluded);
        self.order
            .range((start, Bound::Unbounded))
            .filter_map(|id| self.entries.get_key_value(id))
    }
}

/// `map[&id]`, for callers that know the id exists (tests, tools); panics otherwise, as
/// `BTreeMap` does.
impl<K: Ord + Hash + Copy, V> std::ops::Index<&K> for IdMap<K, V> {
    type Output = V;

    fn index(&self, id: &K) -> &V {
        self.entries.get(id).expect("no entry with this id")
    }
}

impl<'a, K: Ord + Hash + Copy, V> IntoIterator for &'a IdMap<K, V> {
    type Item = (&'a K, &'a V);
    type IntoIter = Box<dyn Iterator<Item = (&'a K, &'a V)> + 'a>;

    fn into_iter(self) -> Self::IntoIter {
        Box::new(self.iter())
    }
}

impl<K: Ord + Hash + Copy, V> FromIterator<(K, V)> for IdMap<K, V> {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(items: I) -> Self {
        let mut map = IdMap::new();
        for (k, v) in items {
            map.insert(k, v);
        }
        map
    }
}

/// Serialised as its entries in id order, for snapshots.
impl<K: Ord + Hash + Copy + serde::Serialize, V: serde::Serialize> serde::Serialize
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
    K: Ord + Hash + Copy + serde::Deserialize<'de>,
    V: serde::Deserialize<'de>,
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
