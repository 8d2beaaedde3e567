//! A bounded per-process map of facts about immutable objects (keyed by id): two generations;
//! when the young one is full it becomes the old one and the old one is dropped, so what was
//! used lately stays and memory is bounded by twice the capacity.

use gix::hashtable::HashMap;
use gix::ObjectId;

pub(crate) struct Generations<V> {
    young: HashMap<ObjectId, V>,
    old: HashMap<ObjectId, V>,
    capacity: usize,
}

impl<V> Generations<V> {
    /// At most `capacity` ids per generation.
    pub(crate) fn new(capacity: usize) -> Self {
        Generations {
            young: HashMap::default(),
            old: HashMap::default(),
            capacity: capacity.max(1),
        }
    }

    /// `pick` applied to what is kept for `id`, the young generation first.
    pub(crate) fn find<R>(&self, id: &ObjectId, pick: impl Fn(&V) -> Option<R>) -> Option<R> {
        self.young
            .get(id)
            .and_then(&pick)
            .or_else(|| self.old.get(id).and_then(&pick))
    }

    /// What the young generation keeps for `id` (made when missing), turning generations over
    /// first when it is full.
    pub(crate) fn young_mut(&mut self, id: ObjectId) -> &mut V
    where
        V: Default,
    {
        self.turn_over_for(&id);
        self.young.entry(id).or_default()
    }

    /// Keeps `value` for `id` in the young generation.
    pub(crate) fn insert(&mut self, id: ObjectId, value: V) {
        self.turn_over_for(&id);
        self.young.insert(id, value);
    }

    fn turn_over_for(&mut self, id: &ObjectId) {
        if self.young.len() >= self.capacity && !self.young.contains_key(id) {
            self.old = std::mem::take(&mut self.young);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_old_generation_is_dropped_when_the_young_one_fills_again() {
        let id = |n: u8| ObjectId::from([n; 20]);
        let mut g = Generations::new(2);
        g.insert(id(1), 1);
        g.insert(id(2), 2);
        g.insert(id(3), 3); // 1 and 2 are now old
        assert_eq!(g.find(&id(1), |v| Some(*v)), Some(1));
        g.insert(id(4), 4);
        g.insert(id(5), 5); // 3 and 4 old, 1 and 2 gone
        assert_eq!(g.find(&id(1), |v| Some(*v)), None);
        assert_eq!(g.find(&id(3), |v| Some(*v)), Some(3));
        *g.young_mut(id(5)) += 10;
        assert_eq!(g.find(&id(5), |v| Some(*v)), Some(15));
    }
}
