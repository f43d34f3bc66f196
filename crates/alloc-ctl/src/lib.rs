//! edgesplit's allocator: mimalloc, called through its plain API whenever the alignment allows, and a safe
//! wrapper for `mi_collect`. A crate of its own so that edgesplit itself keeps `unsafe_code = "forbid"`
//! (issue 17).
//!
//! Why not the `mimalloc` crate's `MiMalloc`: it passes every allocation to `mi_malloc_aligned`, even
//! Rust's usual 8-byte alignment. In mimalloc v3 that call takes its fast path only for blocks of up to
//! 1 KiB; a larger one whose size class is not a power of two goes through `_generic` and then
//! `_overalloc`, which allocates `size + align - 1` bytes and marks the page as holding interior
//! pointers, so its frees are slower too. On the request path that was 4 of the 15 allocations per
//! request (the header maps' entries, the request's boxed future): 1,837 allocator instructions a request
//! under callgrind, 1,156 with this. Every mimalloc block is a whole number of machine words from a
//! word-aligned start, so `mi_malloc` already gives 8-byte alignment; only larger alignments need the
//! aligned API.

use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;

use libmimalloc_sys as ffi;

/// The alignment every mimalloc block has: one machine word.
const WORD: usize = std::mem::size_of::<usize>();

/// The global allocator: `#[global_allocator] static ALLOC: alloc_ctl::MiMalloc = alloc_ctl::MiMalloc;`.
pub struct MiMalloc;

// SAFETY: each method forwards to the mimalloc call with the same contract, and the plain calls are used
// only for alignments every mimalloc block meets (one word, see above).
unsafe impl GlobalAlloc for MiMalloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.align() <= WORD {
            unsafe { ffi::mi_malloc(layout.size()).cast() }
        } else {
            unsafe { ffi::mi_malloc_aligned(layout.size(), layout.align()).cast() }
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.align() <= WORD {
            unsafe { ffi::mi_zalloc(layout.size()).cast() }
        } else {
            unsafe { ffi::mi_zalloc_aligned(layout.size(), layout.align()).cast() }
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        unsafe { ffi::mi_free(ptr.cast::<c_void>()) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if layout.align() <= WORD {
            unsafe { ffi::mi_realloc(ptr.cast::<c_void>(), new_size).cast() }
        } else {
            unsafe { ffi::mi_realloc_aligned(ptr.cast::<c_void>(), new_size, layout.align()).cast() }
        }
    }
}

/// Returns the calling thread's free pages to the OS: all of them (`force`), or those whose purge delay
/// has passed. mimalloc purges lazily, on a later allocation or free by the same thread: a worker that
/// went quiet after its connections closed would otherwise keep their memory.
pub fn collect(force: bool) {
    // SAFETY: mi_collect takes no pointer and may be called from any thread at any time.
    unsafe { libmimalloc_sys::mi_collect(force) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_size_and_alignment_comes_back_aligned_and_usable() {
        let a = MiMalloc;
        for align in [1, 2, 4, 8, 16, 32, 64, 128, 4096] {
            for size in (1..=2048).chain([4095, 4096, 5000, 65_536, 1 << 20]) {
                let layout = Layout::from_size_align(size, align).unwrap();
                // SAFETY: non-zero sizes; each block is written within its size, then freed once.
                unsafe {
                    let p = a.alloc(layout);
                    assert!(!p.is_null());
                    assert_eq!(p as usize % align, 0, "size {size} align {align}");
                    p.write_bytes(0xa5, size);
                    let p = a.realloc(p, layout, size * 2);
                    assert_eq!(p as usize % align, 0, "realloc: size {size} align {align}");
                    assert_eq!(*p.add(size - 1), 0xa5, "realloc keeps the bytes");
                    a.dealloc(p, Layout::from_size_align(size * 2, align).unwrap());
                    let z = a.alloc_zeroed(layout);
                    assert_eq!(z as usize % align, 0);
                    assert!(std::slice::from_raw_parts(z, size).iter().all(|&b| b == 0));
                    a.dealloc(z, layout);
                }
            }
        }
    }
}
