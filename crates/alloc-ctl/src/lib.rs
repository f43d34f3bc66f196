//! A safe wrapper for mimalloc's `mi_collect`, in a crate of its own so that edgesplit itself keeps
//! `unsafe_code = "forbid"` (issue 17).

/// Returns the calling thread's free pages to the OS: all of them (`force`), or those whose purge delay
/// has passed. mimalloc purges lazily, on a later allocation or free by the same thread: a worker that
/// went quiet after its connections closed would otherwise keep their memory.
pub fn collect(force: bool) {
    // SAFETY: mi_collect takes no pointer and may be called from any thread at any time.
    unsafe { libmimalloc_sys::mi_collect(force) }
}
