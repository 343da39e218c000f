// Note [Uninstrumented libraries]
// ThreadSanitizer sees only the memory accesses of code compiled with
// -fsanitize=thread, plus the calls every library makes through its
// interceptors (pthread_mutex_lock, memcpy, operator new, ...). Where a
// library that is not instrumented orders two threads with its own atomics,
// TSan sees the accesses on either side but not the order, and reports a
// race that is not there. fanin's TSan build (CMake FANIN_SANITIZE=thread)
// links this file into every program; each suppression below names the
// library, what TSan cannot see there, and why the report is false:
//  - oneDNN (libdnnl, Debian's build): its first-use initializations are
//    guarded by its own atomics: the primitive cache creates its
//    read-write lock on first use, and the ITT instrumentation inits its
//    global mutex behind an atomic counter and a flag polled with
//    sched_yield, then locks it. Two CPU workers making their first oneDNN
//    calls at once (warm-up) made TSan report pthread_mutex_init racing with
//    pthread_mutex_lock on that mutex, both called from libdnnl. called_from_lib
//    makes the interceptors called from libdnnl ignored; TSan could not
//    check oneDNN's own code anyway, and fanin's accesses to the buffers it
//    passes stay checked on fanin's side. tests/first_use makes a process's
//    first oneDNN calls from several threads at once.
//  - libstdc++ is not built with TSan, so TSan cannot see the atomic
//    reference count of std::exception_ptr: when a worker drops the last
//    reference to a failed future's shared state after the caller has read
//    the Error, it reports the free as racing with that read. The count
//    orders them; a known false positive of every std::future carrying an
//    exception across threads (docs/concurrency.md, Note [Engine lifetime]).
// Anything else TSan reports fails the run (halt_on_error=1 in the tsan test
// preset).
#if defined(__SANITIZE_THREAD__)
extern "C" const char* __tsan_default_suppressions() {
  return "called_from_lib:libdnnl.so\n"
         "race:std::__exception_ptr::exception_ptr::_M_release\n";
}
#endif
