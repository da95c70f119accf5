//! The process's memory allocator settings.
//!
//! glibc's malloc gives threads that allocate at the same time arenas of their
//! own (up to eight per core) and hands little of their free memory back. An
//! ingest pod rebuilds a camera's GStreamer pipeline — and its threads — at
//! every reconnection, so its resident memory crept up with the arenas: in the
//! soak test (`scripts/soak.sh`; two live cameras replaying their clip, so
//! reconnecting every few seconds) it went from 90 to 130–158 MiB in five
//! minutes and kept rising, where with two arenas it stays at 102–109 MiB. So
//! the process uses at most two arenas, unless `MALLOC_ARENA_MAX` says
//! otherwise (glibc reads it itself).
//!
//! Two arenas still kept the freed memory of torn-down pipelines: the pod
//! crept from 92 to 114 MiB in six minutes with under 28 MiB in use. The
//! ingest supervisor also hands it back after each run of a camera
//! (`streetscope_ingest::source::release_freed_memory`, `malloc_trim`).

/// Caps glibc's malloc arenas at two unless `MALLOC_ARENA_MAX` is set. Call
/// first in `main`, before any thread is started.
pub fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only sets a parameter of the allocator; called before
        // any other thread of this process exists.
        #[allow(unsafe_code)]
        let done = unsafe { libc::mallopt(libc::M_ARENA_MAX, 2) };
        if done != 1 {
            eprintln!("warning: could not limit malloc's arenas (mallopt returned {done})");
        }
    }
}
