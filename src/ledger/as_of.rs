//! As-of reads of the whole tenant state: which version an instant means, the bounded cache
//! of past states ([`PastStates`]) and the fold from its nearest entry, and the rebuild from
//! the past index ([`Ledger::with_view_at`]) that group state and entitlements `?at=` use.

use super::{Ledger, World};
use crate::store::Error as StoreError;
use chrono::Utc;
use events::{evolve, Tenant, TenantId};
use std::sync::Arc;

/// Fewest tenant events between two as-of checkpoints left by a fold. A tenant whose history
/// holds more checkpoints than the budget keeps gets them further apart (a power of two times
/// this), so that a fold never clones a state only to see it evicted.
pub const CHECKPOINT_EVENTS: u64 = 5_000;
/// Licences and users held by the kept answers of as-of queries together (each state weighs
/// its licences plus its users plus one); past it the least recently used go first. The
/// checkpoints folds leave behind have a budget of their own, so a fold through a long stretch
/// of history never evicts the answers an auditor is still looking at.
pub const PAST_STATES_WEIGHT_MAX: u64 = 2_000_000;
/// Past states of each kind (answers, checkpoints) kept at most, whatever their weight.
pub const PAST_STATES_MAX: usize = 256;

/// Why a past state is kept: it answered a query, or a fold passed through it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kept {
    Answer,
    Checkpoint,
}

/// A tenant's state at one version of its stream.
pub(super) struct PastState {
    tenant: TenantId,
    version: u64,
    /// Global sequence of the tenant's event number `version`.
    seq: u64,
    state: Arc<Tenant>,
    weight: u64,
    last_used: u64,
    kind: Kept,
}

/// Tenant states at past versions: the answers of earlier as-of queries (a repeated query, or
/// another view of the same instant, is a lookup) and the checkpoints their folds left behind
/// (a query at a nearby instant folds from the nearest one). Each kind is bounded by
/// [`PAST_STATES_WEIGHT_MAX`] and [`PAST_STATES_MAX`] on its own.
pub struct PastStates {
    pub(super) inner: std::sync::Mutex<PastStatesInner>,
    weight_max: u64,
    count_max: usize,
}

impl Default for PastStates {
    fn default() -> Self {
        PastStates::with_limits(PAST_STATES_WEIGHT_MAX, PAST_STATES_MAX)
    }
}

#[derive(Default)]
pub(super) struct PastStatesInner {
    pub(super) states: Vec<PastState>,
    tick: u64,
}

impl PastStatesInner {
    fn weight_of_kind(&self, kind: Kept) -> (u64, usize) {
        self.states
            .iter()
            .filter(|p| p.kind == kind)
            .fold((0, 0), |(weight, count), p| (weight + p.weight, count + 1))
    }
}

fn weight_of(state: &Tenant) -> u64 {
    state.licenses.len() as u64 + state.users.len() as u64 + 1
}

impl PastStates {
    /// Past states bounded per kind by a total weight and a count.
    pub(super) fn with_limits(weight_max: u64, count_max: usize) -> PastStates {
        PastStates {
            inner: std::sync::Mutex::default(),
            weight_max,
            count_max,
        }
    }

    /// Tenant events between two checkpoints of a fold through `live`'s history: at least
    /// [`CHECKPOINT_EVENTS`], and far enough apart that the whole history's checkpoints fit
    /// the budget (states weigh about what the live one does).
    pub(super) fn checkpoint_spacing(&self, live: &Tenant) -> u64 {
        let fit = (self.weight_max / weight_of(live)).clamp(1, self.count_max as u64);
        let mut spacing = CHECKPOINT_EVENTS;
        while spacing.saturating_mul(fit) < live.version && spacing < u64::MAX / 2 {
            spacing *= 2;
        }
        spacing
    }

    /// The kept state of `tenant` with the highest version at or below `version`.
    pub(super) fn nearest_at_or_below(
        &self,
        tenant: TenantId,
        version: u64,
    ) -> Option<(u64, u64, Arc<Tenant>)> {
        let mut inner = self.inner.lock().ok()?;
        inner.tick += 1;
        let tick = inner.tick;
        let best = inner
            .states
            .iter_mut()
            .filter(|p| p.tenant == tenant && p.version <= version)
            .max_by_key(|p| (p.version, p.kind == Kept::Answer))?;
        best.last_used = tick;
        Some((best.version, best.seq, Arc::clone(&best.state)))
    }

    pub(super) fn keep(
        &self,
        tenant: TenantId,
        version: u64,
        seq: u64,
        state: Arc<Tenant>,
        kind: Kept,
    ) {
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        inner.tick += 1;
        let tick = inner.tick;
        if let Some(found) = inner
            .states
            .iter_mut()
            .find(|p| p.tenant == tenant && p.version == version)
        {
            // A checkpoint that turns out to be an answer moves to the answers' budget.
            found.last_used = tick;
            if kind == Kept::Answer {
                found.kind = Kept::Answer;
            } else {
                return;
            }
        } else {
            let weight = weight_of(&state);
            if weight > self.weight_max {
                return;
            }
            inner.states.push(PastState {
                tenant,
                version,
                seq,
                state,
                weight,
                last_used: tick,
                kind,
            });
        }
        loop {
            let (weight, count) = inner.weight_of_kind(kind);
            if weight <= self.weight_max && count <= self.count_max {
                break;
            }
            let Some(oldest) = (0..inner.states.len())
                .filter(|&i| inner.states[i].kind == kind)
                .min_by_key(|&i| inner.states[i].last_used)
            else {
                break;
            };
            inner.states.swap_remove(oldest);
        }
    }
}

impl World {
    /// The tenant's usage after every event recorded at or before `at`, and its version then.
    pub fn usage_at(
        &self,
        tenant: TenantId,
        at: chrono::DateTime<Utc>,
    ) -> (
        u64,
        std::collections::BTreeMap<events::TypeCode, projections::TypeUsage>,
    ) {
        let usage = self
            .usage_history
            .get(&tenant)
            .map(|history| history.at(at))
            .unwrap_or_default();
        (self.version_at(tenant, at), usage)
    }

    /// The version `tenant` had at `at`: the number of its events recorded at or before it.
    pub fn version_at(&self, tenant: TenantId, at: chrono::DateTime<Utc>) -> u64 {
        let Some(line) = self.timelines.get(&tenant) else {
            return 0;
        };
        let after = line.partition_point(|(recorded_at, _)| *recorded_at <= at);
        after.checked_sub(1).map_or(0, |i| line[i].1)
    }
}

impl Ledger {
    /// Run `read` on the tenant as it was at `at`: every event recorded at or before it (the
    /// empty state if the tenant did not exist yet). When nothing happened to the tenant since
    /// `at`, that is the live state, read in place. Otherwise the state is a kept past state
    /// (see [`PastStates`]) or is folded from the nearest one at or below the version wanted,
    /// leaving checkpoints every [`CHECKPOINT_EVENTS`] events for later queries.
    pub fn with_tenant_at<R>(
        &self,
        tenant: TenantId,
        at: chrono::DateTime<Utc>,
        read: impl FnOnce(&Tenant) -> R,
    ) -> Result<R, StoreError> {
        self.with_state_at(tenant, at, |_, _, _| None, read)
    }

    /// Run `read` on the part of the tenant as it was at `at` that a group-state question
    /// (about any group) or an entitlement question (about `user`) reads, rebuilt from the
    /// tenant's [`projections::PastIndex`] without folding (see
    /// [`projections::PastIndex::tenant_at`] for what it holds). The live state when nothing
    /// happened since `at`; a fold, as [`Ledger::with_tenant_at`], if the index cannot answer.
    pub fn with_view_at<R>(
        &self,
        tenant: TenantId,
        at: chrono::DateTime<Utc>,
        user: Option<events::UserId>,
        read: impl FnOnce(&Tenant) -> R,
    ) -> Result<R, StoreError> {
        let rebuild = |world: &World, live: &Tenant, wanted: u64| {
            world.past.get(&tenant)?.tenant_at(live, wanted, user)
        };
        self.with_state_at(tenant, at, rebuild, read)
    }

    /// [`Ledger::with_tenant_at`], trying `rebuild` (world, live state, version wanted) first
    /// when the version wanted is a past one. `rebuild` runs under the read lock: holding a
    /// tenant's `Arc` past it would make the writer's next change to the tenant clone it whole.
    fn with_state_at<R>(
        &self,
        tenant: TenantId,
        at: chrono::DateTime<Utc>,
        rebuild: impl FnOnce(&World, &Tenant, u64) -> Option<Tenant>,
        read: impl FnOnce(&Tenant) -> R,
    ) -> Result<R, StoreError> {
        let (wanted, spacing) = {
            let world = self.read();
            let wanted = world.version_at(tenant, at);
            match world.tenants.get(&tenant) {
                Some(live) if live.version == wanted => return Ok(read(live)),
                Some(live) if wanted > 0 => {
                    if let Some(past) = rebuild(&world, live, wanted) {
                        drop(world);
                        return Ok(read(&past));
                    }
                    (
                        wanted,
                        self.handle.shared.past_states.checkpoint_spacing(live),
                    )
                }
                _ => (wanted, CHECKPOINT_EVENTS),
            }
        };
        if wanted == 0 {
            return Ok(read(&Tenant::empty(tenant)));
        }
        let past = self.tenant_at_version(tenant, wanted, spacing)?;
        Ok(read(&past))
    }

    /// The tenant's state after its event number `version`.
    /// A fold leaves a checkpoint at every multiple of `spacing`.
    fn tenant_at_version(
        &self,
        tenant: TenantId,
        version: u64,
        spacing: u64,
    ) -> Result<Arc<Tenant>, StoreError> {
        let past = &self.handle.shared.past_states;
        let (mut state, mut after_seq) = match past.nearest_at_or_below(tenant, version) {
            Some((found, seq, state)) if found == version => {
                past.keep(tenant, version, seq, Arc::clone(&state), Kept::Answer);
                return Ok(state);
            }
            Some((_, seq, state)) => (Tenant::clone(&state), seq),
            None => (Tenant::empty(tenant), 0),
        };
        let mut failure = None;
        if state.version < version {
            self.store().scan_tenant(tenant, after_seq, &mut |stored| {
                let envelope = match stored.decode() {
                    Ok(envelope) => envelope,
                    Err(e) => {
                        failure = Some(e);
                        return false;
                    }
                };
                evolve(&mut state, &envelope.event, envelope.version);
                state.last_hash = stored.hash();
                after_seq = stored.seq;
                if envelope.version >= version {
                    return false;
                }
                if envelope.version % spacing == 0 {
                    past.keep(
                        tenant,
                        envelope.version,
                        after_seq,
                        Arc::new(state.clone()),
                        Kept::Checkpoint,
                    );
                }
                true
            })?;
        }
        if let Some(e) = failure {
            return Err(e);
        }
        let state = Arc::new(state);
        past.keep(tenant, version, after_seq, Arc::clone(&state), Kept::Answer);
        Ok(state)
    }
}
