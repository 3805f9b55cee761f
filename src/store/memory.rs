//! A log in a vector: for tests and the fuzzer, which measure the rules and the folds, not
//! the disk. Not durable: nothing survives the process.

use super::{EncodedEvent, Error, EventStore};
use events::TenantId;
use std::sync::{Mutex, MutexGuard};

/// See the module documentation.
#[derive(Debug, Default)]
pub struct MemoryStore {
    events: Mutex<Vec<EncodedEvent>>,
}

impl MemoryStore {
    /// A store holding `events` as given, unchecked: a test may hand it a damaged log.
    pub fn with_events(events: Vec<EncodedEvent>) -> MemoryStore {
        MemoryStore {
            events: Mutex::new(events),
        }
    }

    /// A copy of every event held.
    pub fn events(&self) -> Vec<EncodedEvent> {
        self.lock().clone()
    }

    fn lock(&self) -> MutexGuard<'_, Vec<EncodedEvent>> {
        self.events
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn visit(
        &self,
        keep: impl Fn(&EncodedEvent) -> bool,
        visit: &mut dyn FnMut(EncodedEvent) -> bool,
    ) -> Result<(), Error> {
        let selected: Vec<EncodedEvent> = self.lock().iter().filter(|e| keep(e)).cloned().collect();
        for event in selected {
            if !visit(event) {
                break;
            }
        }
        Ok(())
    }
}

impl EventStore for MemoryStore {
    fn append(&self, batch: &[EncodedEvent]) -> Result<(), Error> {
        let mut events = self.lock();
        super::check_follows(events.last().map_or(0, |e| e.seq), batch)?;
        events.extend_from_slice(batch);
        Ok(())
    }

    fn scan(&self, after: u64, visit: &mut dyn FnMut(EncodedEvent) -> bool) -> Result<(), Error> {
        self.visit(|e| e.seq > after, visit)
    }

    fn scan_tenant(
        &self,
        tenant: TenantId,
        after: u64,
        visit: &mut dyn FnMut(EncodedEvent) -> bool,
    ) -> Result<(), Error> {
        self.visit(|e| e.tenant == tenant && e.seq > after, visit)
    }

    fn head(&self) -> u64 {
        self.lock().last().map_or(0, |e| e.seq)
    }
}
