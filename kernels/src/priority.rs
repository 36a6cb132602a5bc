//! Background priority for compute threads: a server runs its model and post-processing
//! threads in Linux's idle scheduling class, below every thread that answers requests, so a
//! saturated model never makes an API answer wait for the CPU. Nice levels alone do not: a
//! thread at nice +10 still keeps about a tenth of a core against a request thread, and a
//! woken request thread can wait up to a scheduler slice for it.

/// Nice levels added to a compute thread where the idle class is refused.
const COMPUTE_NICE: i32 = 10;

/// Moves the calling thread to `SCHED_IDLE` (Linux: scheduling policies are per thread); where
/// that is refused, lowers its priority by `COMPUTE_NICE` (10) instead. Best effort: where both
/// fail or the OS has neither, nothing changes.
pub fn lower_current_thread_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: plain system calls on the calling thread (id 0 / its own tid); the parameter
    // struct lives on this stack for the duration of the call.
    unsafe {
        let param = libc::sched_param { sched_priority: 0 };
        if libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) != 0 {
            let tid = libc::gettid() as libc::id_t;
            let now = libc::getpriority(libc::PRIO_PROCESS, tid);
            libc::setpriority(libc::PRIO_PROCESS, tid, (now + COMPUTE_NICE).min(19));
        }
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn lowers_only_the_calling_thread() {
        let policy = || unsafe { libc::sched_getscheduler(0) };
        let before = policy();
        assert_ne!(
            before,
            libc::SCHED_IDLE,
            "the test thread starts in a normal class"
        );
        let inside = std::thread::spawn(move || {
            lower_current_thread_priority();
            policy()
        })
        .join()
        .unwrap();
        assert_eq!(inside, libc::SCHED_IDLE);
        assert_eq!(policy(), before, "the caller's thread keeps its class");
    }
}
