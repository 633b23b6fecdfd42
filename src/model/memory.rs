//! Keeps freed buffers in the process while the model runs.
//!
//! Every step allocates and frees the same large activation and gradient buffers. By default glibc's
//! allocator serves large requests with fresh `mmap`s and unmaps them when freed, so each step pays
//! page faults for memory it just gave back and, with several threads, a TLB shootdown on every core
//! per unmap (measured: MobileNetV2 1.0 at 224 px with 14 frozen blocks trained at 34 img/s instead of
//! 63, inference 32 img/s instead of 95). While a [`Buffers`] guard lives, freed memory stays in the
//! heap for the next step; when the last guard drops, the heap is trimmed and the memory returned.
//! Elsewhere than glibc the guard does nothing.

use std::sync::Mutex;

/// Guards alive now (training calls inference for validation, so guards nest).
static LIVE: Mutex<usize> = Mutex::new(0);

/// While alive, freed buffers are kept for reuse rather than returned to the OS.
pub struct Buffers(());

impl Buffers {
    /// Starts keeping freed buffers.
    pub fn keep() -> Buffers {
        let mut live = LIVE.lock().unwrap_or_else(|e| e.into_inner());
        if *live == 0 {
            allocator::keep();
        }
        *live += 1;
        Buffers(())
    }
}

impl Drop for Buffers {
    fn drop(&mut self) {
        let mut live = LIVE.lock().unwrap_or_else(|e| e.into_inner());
        *live -= 1;
        if *live == 0 {
            allocator::release();
        }
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

    /// glibc's defaults back, and the free memory returned to the OS.
    pub fn release() {
        // SAFETY: as above; malloc_trim only releases free memory.
        unsafe {
            libc::mallopt(libc::M_MMAP_MAX, 65_536);
            libc::mallopt(libc::M_TRIM_THRESHOLD, 128 * 1024);
            libc::malloc_trim(0);
        }
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
mod allocator {
    pub fn keep() {}
    pub fn release() {}
}
