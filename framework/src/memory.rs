//! Giving memory the process freed back to the system.
//!
//! glibc's malloc keeps what a thread frees in that thread's arena, and returns pages
//! only from the top of a heap. After a burst (1 MiB chunks of large puts, the buffers of
//! many connections) most of that memory is free again but stays resident, scattered
//! below live allocations. [`upkeep`] asks glibc every few seconds to release the free
//! pages of every arena (`malloc_trim`), on a blocking thread: the walk takes each
//! arena's lock in turn, a fraction of a millisecond for this process's heap.
//!
//! Other allocators (musl's, or one a binary installs) return memory themselves; there
//! this does nothing.

use std::time::Duration;

/// How often free memory is given back.
const INTERVAL: Duration = Duration::from_secs(5);

/// Gives free memory back every [`INTERVAL`], forever; spawn it once.
pub(crate) async fn upkeep() {
    let mut interval = tokio::time::interval(INTERVAL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let _ = tokio::task::spawn_blocking(release_free_memory).await;
    }
}

/// Asks glibc to return the free pages of all its arenas to the system.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn release_free_memory() {
    // SAFETY: `malloc_trim` takes no pointers and changes only the allocator's own free
    // lists, under the locks every allocation takes.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn release_free_memory() {}
