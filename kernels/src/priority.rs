//! Background priority for compute threads: a server runs its model and post-processing
//! threads a few nice levels below the threads that answer requests, so a saturated model
//! delays an API answer by no more than a scheduler slice.

/// Nice levels added to a compute thread.
const COMPUTE_NICE: i32 = 10;

/// Lowers the calling thread's OS priority by [`COMPUTE_NICE`] (Linux: nice values are per
/// thread). Best effort: where the call fails or the OS has no per-thread nice, nothing changes.
pub fn lower_current_thread_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: plain system calls on the calling thread's own id; no memory is shared.
    unsafe {
        let tid = libc::gettid() as libc::id_t;
        let now = libc::getpriority(libc::PRIO_PROCESS, tid);
        libc::setpriority(libc::PRIO_PROCESS, tid, (now + COMPUTE_NICE).min(19));
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn lowers_only_the_calling_thread() {
        let own = || unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t) };
        let before = own();
        let inside = std::thread::spawn(move || {
            lower_current_thread_priority();
            own()
        })
        .join()
        .unwrap();
        assert_eq!(inside, (before + COMPUTE_NICE).min(19));
        assert_eq!(own(), before, "the caller's thread keeps its priority");
    }
}
