//! Keeps freed buffers in the process while the model runs.
//!
//! Every step allocates and frees the same large activation and gradient buffers. By default glibc's
//! allocator serves large requests with fresh `mmap`s and unmaps them when freed, so each step pays
//! page faults for memory it just gave back and, with several threads, a TLB shootdown on every core
//! per unmap (measured: MobileNetV2 1.0 at 224 px with 14 frozen blocks trained at 34 img/s instead of
//! 63, inference 32 img/s instead of 95). Once the model first runs, freed memory stays in the heap
//! for the rest of the process; training returns it to the OS when it ends ([`Training`]), since it
//! uses the most. Elsewhere than glibc this does nothing.

use std::sync::Once;

/// From now on in this process, large buffers come from the heap and freed memory stays there.
pub fn keep_freed_buffers() {
    static KEEP: Once = Once::new();
    KEEP.call_once(allocator::keep);
}

/// Held while training: keeps freed buffers, and returns the free memory to the OS when dropped.
pub struct Training(());

impl Training {
    /// Starts keeping freed buffers.
    pub fn start() -> Training {
        keep_freed_buffers();
        Training(())
    }
}

impl Drop for Training {
    fn drop(&mut self) {
        allocator::trim();
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod allocator {
    /// Large requests from the heap, not `mmap`; no trimming of the heap's top on free.
    pub fn keep() {
        // SAFETY: mallopt only changes the allocator's thresholds; both values are in range.
        unsafe {
            libc::mallopt(libc::M_MMAP_MAX, 0);
            libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
        }
    }

    /// The heap's free memory back to the OS.
    pub fn trim() {
        // SAFETY: malloc_trim only releases memory that is free.
        unsafe {
            libc::malloc_trim(0);
        }
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
mod allocator {
    pub fn keep() {}
    pub fn trim() {}
}
