//! Memory accounting: a counting global allocator and the resident set size.
//!
//! The allocator counts live heap bytes and their peak only while counting is switched on (during
//! builds); while checks are timed it costs one relaxed load and a branch per allocation.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicIsize, Ordering};

/// The global allocator of the benchmark.
pub struct Counting;

static ON: AtomicBool = AtomicBool::new(false);
static LIVE: AtomicIsize = AtomicIsize::new(0);
static PEAK: AtomicIsize = AtomicIsize::new(0);

#[inline]
fn add(n: usize) {
    if ON.load(Ordering::Relaxed) {
        let now = LIVE.fetch_add(n as isize, Ordering::Relaxed) + n as isize;
        PEAK.fetch_max(now, Ordering::Relaxed);
    }
}

#[inline]
fn sub(n: usize) {
    if ON.load(Ordering::Relaxed) {
        LIVE.fetch_sub(n as isize, Ordering::Relaxed);
    }
}

// SAFETY: every call is forwarded to the system allocator unchanged; the counters are only
// bookkeeping.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's layout.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            add(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's layout.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            add(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        sub(layout.size());
        // SAFETY: `ptr` was allocated by `System` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded unchanged.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            sub(layout.size());
            add(new_size);
        }
        p
    }
}

/// Heap and RSS figures of one build.
#[derive(Debug, Clone, Copy, Default)]
pub struct MemDelta {
    /// Heap bytes allocated during the window and still live at its end.
    pub heap_live: i64,
    /// Highest heap growth above the start of the window.
    pub heap_peak: i64,
    /// Resident set size growth over the window (bytes; may under-count reused memory).
    pub rss: i64,
}

/// A measurement window: counting is on from `start` to `stop`.
pub struct Window {
    live0: isize,
    rss0: i64,
}

impl Window {
    pub fn start() -> Window {
        let live0 = LIVE.load(Ordering::Relaxed);
        PEAK.store(live0, Ordering::Relaxed);
        ON.store(true, Ordering::SeqCst);
        Window {
            live0,
            rss0: rss_bytes(),
        }
    }

    pub fn stop(self) -> MemDelta {
        let live = LIVE.load(Ordering::Relaxed);
        let peak = PEAK.load(Ordering::Relaxed);
        ON.store(false, Ordering::SeqCst);
        // Frees of memory allocated while counting was off would drive LIVE down; resynchronise
        // at the next window instead of carrying that error.
        MemDelta {
            heap_live: (live - self.live0) as i64,
            heap_peak: (peak - self.live0) as i64,
            rss: rss_bytes() - self.rss0,
        }
    }
}

/// Resident set size from `/proc/self/statm`, in bytes (0 if unavailable).
pub fn rss_bytes() -> i64 {
    let text = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: i64 = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    pages * 4096
}
