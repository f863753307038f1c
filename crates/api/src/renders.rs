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

#[derive(Debug, Default)]
pub(crate) struct RenderCache {
    slots: Mutex<HashMap<String, Slot>>,
}

/// The body of one question at one index of one state generation.
#[derive(Debug)]
struct Slot {
    index: u64,
    generation: u64,
    body: Arc<OnceLock<Bytes>>,
}

impl RenderCache {
    /// The body for `question` at `index` in `generation`, rendered by `render` only if no
    /// request rendered it before.
    pub(crate) fn get_or_render(
        &self,
        question: &str,
        index: u64,
        generation: u64,
        render: impl FnOnce() -> Bytes,
    ) -> Bytes {
        let body = {
            let mut slots = self.slots.lock().expect("render cache poisoned");
            match slots.get(question) {
                Some(slot) if slot.index == index && slot.generation == generation => {
                    slot.body.clone()
                }
                _ => {
                    if slots.len() >= MAX_ENTRIES {
                        slots.clear();
                    }
                    let body = Arc::new(OnceLock::new());
                    let slot = Slot {
                        index,
                        generation,
                        body: body.clone(),
                    };
                    slots.insert(question.to_owned(), slot);
                    body
                }
            }
        };
        // Rendered outside the map's lock: other questions go on while this one renders, and
        // requests for this one wait for the first renderer instead of repeating its work.
        body.get_or_init(render).clone()
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.slots.lock().unwrap().len()
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
}
