//! Read results rendered once per index and shared by every request that asks the same.
//!
//! When a write wakes thousands of blocking queries on one service, they all ask the same
//! question of the same state. The first to get here renders the body; the rest wait for it
//! and send the same bytes. A catalog read's body is a function of what was asked (endpoint,
//! topic and the query parameters that shape it) and of its topic's index, for as long as the
//! state is not replaced wholesale (a restore or snapshot install), which the notifier's
//! generation count reveals.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;

/// Beyond this many distinct questions the cache starts over; each entry is one body.
const MAX_ENTRIES: usize = 4096;
/// Nor does it keep more than about this many bytes of bodies. A question's last body stays
/// until the question is asked at another index, and an answer about the whole catalog can be
/// megabytes: without a limit, a few thousand such questions asked once would stay forever.
const MAX_BYTES: usize = 64 << 20;

#[derive(Debug)]
pub(crate) struct RenderCache {
    slots: Mutex<Slots>,
    max_entries: usize,
    max_bytes: usize,
}

impl Default for RenderCache {
    fn default() -> Self {
        Self::with_limits(MAX_ENTRIES, MAX_BYTES)
    }
}

#[derive(Debug, Default)]
struct Slots {
    by_question: HashMap<String, Slot>,
    /// The bytes of the rendered bodies counted in `by_question`'s slots.
    bytes: usize,
}

/// The body of one question at one index of one state generation.
#[derive(Debug)]
struct Slot {
    index: u64,
    generation: u64,
    body: Arc<OnceLock<Bytes>>,
    /// The body's length once its renderer counted it into [`Slots::bytes`].
    counted: usize,
}

impl RenderCache {
    fn with_limits(max_entries: usize, max_bytes: usize) -> Self {
        Self {
            slots: Mutex::default(),
            max_entries,
            max_bytes,
        }
    }

    /// The body for `question` at `index` in `generation`, rendered by `render` only if no
    /// request rendered it before.
    pub(crate) fn get_or_render(
        &self,
        question: &str,
        index: u64,
        generation: u64,
        render: impl FnOnce() -> Bytes,
    ) -> Bytes {
        let (body, new_slot) = {
            let mut slots = self.slots.lock().expect("render cache poisoned");
            match slots.by_question.get(question) {
                Some(slot) if slot.index == index && slot.generation == generation => {
                    (slot.body.clone(), false)
                }
                _ => {
                    if slots.by_question.len() >= self.max_entries || slots.bytes >= self.max_bytes
                    {
                        slots.by_question.clear();
                        slots.bytes = 0;
                    }
                    let body = Arc::new(OnceLock::new());
                    let slot = Slot {
                        index,
                        generation,
                        body: body.clone(),
                        counted: 0,
                    };
                    if let Some(old) = slots.by_question.insert(question.to_owned(), slot) {
                        slots.bytes -= old.counted;
                    }
                    (body, true)
                }
            }
        };
        // Rendered outside the map's lock: other questions go on while this one renders, and
        // requests for this one wait for the first renderer instead of repeating its work.
        let rendered = body.get_or_init(render).clone();
        if new_slot {
            // Counted by the request that made the slot, if the slot is still the cache's.
            let mut slots = self.slots.lock().expect("render cache poisoned");
            let Slots { by_question, bytes } = &mut *slots;
            if let Some(slot) = by_question.get_mut(question) {
                if Arc::ptr_eq(&slot.body, &body) {
                    slot.counted = rendered.len();
                    *bytes += rendered.len();
                }
            }
        }
        rendered
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.slots.lock().unwrap().by_question.len()
    }

    #[cfg(test)]
    fn bytes(&self) -> usize {
        self.slots.lock().unwrap().bytes
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    #[test]
    fn renders_each_question_once_per_index_and_generation() {
        let cache = RenderCache::default();
        let renders = Cell::new(0);
        let render = |text: &'static str| {
            renders.set(renders.get() + 1);
            Bytes::from_static(text.as_bytes())
        };
        assert_eq!(cache.get_or_render("a", 5, 0, || render("one")), "one");
        assert_eq!(cache.get_or_render("a", 5, 0, || render("two")), "one");
        assert_eq!(renders.get(), 1);
        // A new index, another question, or a replaced state each render afresh.
        assert_eq!(cache.get_or_render("a", 6, 0, || render("three")), "three");
        assert_eq!(cache.get_or_render("b", 6, 0, || render("four")), "four");
        assert_eq!(cache.get_or_render("a", 6, 2, || render("five")), "five");
        assert_eq!(renders.get(), 4);
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn starts_over_when_full() {
        let cache = RenderCache::default();
        for i in 0..MAX_ENTRIES {
            cache.get_or_render(&i.to_string(), 1, 0, Bytes::new);
        }
        assert_eq!(cache.len(), MAX_ENTRIES);
        cache.get_or_render("one more", 1, 0, Bytes::new);
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn starts_over_when_its_bodies_are_too_big() {
        let cache = RenderCache::with_limits(100, 1000);
        let body = |len: usize| move || Bytes::from(vec![b'x'; len]);
        cache.get_or_render("a", 1, 0, body(400));
        cache.get_or_render("b", 1, 0, body(400));
        assert_eq!((cache.len(), cache.bytes()), (2, 800));
        // A question asked at a new index replaces its body: the old one no longer counts.
        cache.get_or_render("b", 2, 0, body(500));
        assert_eq!((cache.len(), cache.bytes()), (2, 900));
        cache.get_or_render("c", 1, 0, body(300));
        assert_eq!((cache.len(), cache.bytes()), (3, 1200));
        // Over the limit: the next new body starts a new cache.
        assert_eq!(cache.get_or_render("d", 1, 0, body(10)).len(), 10);
        assert_eq!((cache.len(), cache.bytes()), (1, 10));
        // Hits still answer without rendering.
        let again = cache.get_or_render("d", 1, 0, || unreachable!("cached"));
        assert_eq!(again.len(), 10);
    }
}
