//! How the process takes memory from the kernel.

/// Turns transparent huge pages off for this process. mimalloc asks for them (`MADV_HUGEPAGE`)
/// on its arenas, so on a host whose THP setting is `madvise` or `always` every first touch of
/// a 2 MiB region faults in, and zeroes, the whole 2 MiB: a short run spent 44 % of its CPU
/// time in the kernel clearing pages, and peaked at 81 MB where 54 MB is what it touches (full
/// build at 5,000 stocks). The flag is per process and applies to every later fault, so calling
/// this first thing in `main` is enough. Elsewhere than Linux it does nothing.
pub fn avoid_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_THP_DISABLE takes an integer flag and no pointers; a kernel without it
    // answers EINVAL, which changes nothing and is ignored.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}
