//! What the ledger tells its allocator (mimalloc, the global allocator of the `ledger` and
//! `bench` binaries) while it rebuilds its state.
//!
//! A replay allocates the state it builds and, alongside, buffers it drops a moment later:
//! the records read from the log, the tables a growing map leaves behind. mimalloc hands
//! memory freed this way back to the kernel after a short delay (10 ms), and the next
//! allocation takes fresh pages the kernel must zero first (huge pages, 2 MiB each): on a
//! 2 M-event replay 5 000 to 11 000 page faults instead of 1 200, and a replay up to 40 %
//! slower on the runs where they were many. [`HoldFreedMemory`] keeps freed memory in the
//! process for as long as any replay runs, and once the last one ends, gives back what is
//! still free.
//!
//! Without mimalloc as the global allocator (the tests) the calls change nothing but
//! mimalloc's own idle heap.
//!
//! [`use_small_pages`] turns transparent huge pages off for the process. mimalloc asks for
//! them (`MADV_HUGEPAGE`), and each first touch of one makes the kernel zero 2 MiB at once;
//! on the virtual machines the ledger is measured on (free memory handed back to the host
//! in 2 MiB blocks), a replay spent a third of its time there, and 25 % less time in all
//! with small pages (BENCH.md). An operator whose machines do better with huge pages keeps
//! them with `LEDGER_HUGE_PAGES=1`.

use std::os::raw::c_long;
use std::sync::Mutex;

/// `mi_option_purge_delay` in mimalloc's `mi_option_t` (`libmimalloc-sys` names no constant
/// for it): how many milliseconds freed memory waits before it goes back to the kernel; `-1`
/// never.
const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Transparent huge pages for this process (and the processes it starts) unless the
/// environment's `LEDGER_HUGE_PAGES` is `1`: see the module documentation. Called first thing
/// in `main`; the kernel applies it to every later page fault, of memory mapped before too.
pub fn use_small_pages() {
    if std::env::var_os(HUGE_PAGES_VAR).is_some_and(|v| v == "1") {
        return;
    }
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_THP_DISABLE takes plain integers and changes only how the kernel backs
    // this process's future page faults; it fails harmlessly on kernels without it.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

/// The environment variable that keeps transparent huge pages on.
pub const HUGE_PAGES_VAR: &str = "LEDGER_HUGE_PAGES";

/// Replays running, and the purge delay in force before the first of them began.
static HOLDING: Mutex<(usize, c_long)> = Mutex::new((0, 0));

/// While one lives (any thread), freed memory stays in the process for reuse. See the module
/// documentation.
pub struct HoldFreedMemory(());

impl HoldFreedMemory {
    pub fn start() -> HoldFreedMemory {
        let mut holding = HOLDING.lock().unwrap_or_else(|e| e.into_inner());
        if holding.0 == 0 {
            // SAFETY: mimalloc's option calls take plain integers and may be made from any
            // thread at any time.
            holding.1 = unsafe { libmimalloc_sys::mi_option_get(PURGE_DELAY) };
            unsafe { libmimalloc_sys::mi_option_set(PURGE_DELAY, -1) };
        }
        holding.0 += 1;
        HoldFreedMemory(())
    }
}

impl Drop for HoldFreedMemory {
    fn drop(&mut self) {
        let mut holding = HOLDING.lock().unwrap_or_else(|e| e.into_inner());
        holding.0 -= 1;
        if holding.0 == 0 {
            // SAFETY: as in `start`; `mi_collect` frees nothing in use, it only hands free
            // memory back to the kernel.
            unsafe {
                libmimalloc_sys::mi_option_set(PURGE_DELAY, holding.1);
                libmimalloc_sys::mi_collect(true);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn purge_delay() -> c_long {
        // SAFETY: as in `HoldFreedMemory::start`.
        unsafe { libmimalloc_sys::mi_option_get(PURGE_DELAY) }
    }

    /// The delay in force when no replay runs (other tests of this process replay too).
    fn original() -> c_long {
        let holding = HOLDING.lock().unwrap_or_else(|e| e.into_inner());
        if holding.0 == 0 {
            purge_delay()
        } else {
            holding.1
        }
    }

    #[test]
    fn freed_memory_is_held_while_any_replay_runs_and_the_delay_comes_back_after_the_last() {
        let before = original();
        assert_ne!(before, -1, "mimalloc purges freed memory by default");
        let first = HoldFreedMemory::start();
        let second = HoldFreedMemory::start();
        assert_eq!(purge_delay(), -1);
        drop(first);
        assert_eq!(purge_delay(), -1, "the second replay still runs");
        drop(second);
        let holding = HOLDING.lock().unwrap_or_else(|e| e.into_inner());
        if holding.0 == 0 {
            assert_eq!(purge_delay(), before, "no replay runs: the delay is back");
        }
    }
}
