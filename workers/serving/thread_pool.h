/* The packed kernel's worker threads: they spin between the ~270 short tasks of a decode step and sleep
 * between steps.
 *
 * OpenMP (torch's libgomp) was tried first: as soon as a second thread of the process had used torch, the
 * process held more OpenMP threads than cores and libgomp slept its workers after ~1,000 spins, so each of
 * a step's parallel regions paid a futex wake-up (73 -> 50-59 tokens/s). Here a task is a generation
 * number bumped under a mutex; workers spin on it (with a pause) for ~POOL_SPIN checks, then sleep on a
 * condition variable that the next task broadcasts. One caller at a time (the engine thread).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <sched.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define pool_pause() _mm_pause()
#else
#define pool_pause() ((void)0)
#endif

#define POOL_MAX_THREADS 64
#define POOL_SPIN 50000 /* pauses before sleeping, ~1 ms here: longer than the gaps inside a step and between steps */

typedef void (*pool_task)(void *context, int begin, int end);

static struct {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    pthread_mutex_t caller; /* one task at a time */
    int workers;            /* started threads (besides the caller) */
    int sleepers;
    atomic_int generation;
    atomic_int pending;
    atomic_int started;
    pool_task task;
    void *context;
    int total, parts;
} pool = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, PTHREAD_MUTEX_INITIALIZER, 0, 0, 0, 0, 0, 0, 0, 0, 0};

static void pool_share(int part) {
    const int begin = (int)((long)pool.total * part / pool.parts), end = (int)((long)pool.total * (part + 1) / pool.parts);
    if (begin < end) pool.task(pool.context, begin, end);
}

static void *pool_worker(void *argument) {
    const int index = (int)(long)argument; /* 1.. : the caller is part 0 */
    int seen = atomic_load(&pool.generation);
    atomic_fetch_add(&pool.started, 1); /* the caller waits for this before its next task */
    for (;;) {
        int spins = 0;
        while (atomic_load_explicit(&pool.generation, memory_order_acquire) == seen && spins < POOL_SPIN) {
            pool_pause();
            if (++spins % 1024 == 0) sched_yield(); /* let a descheduled thread (web, Redis) run */
        }
        if (atomic_load_explicit(&pool.generation, memory_order_acquire) == seen) {
            pthread_mutex_lock(&pool.lock);
            pool.sleepers++;
            while (atomic_load(&pool.generation) == seen) pthread_cond_wait(&pool.wake, &pool.lock);
            pool.sleepers--;
            pthread_mutex_unlock(&pool.lock);
        }
        seen = atomic_load_explicit(&pool.generation, memory_order_acquire);
        if (index < pool.parts) pool_share(index);
        atomic_fetch_sub_explicit(&pool.pending, 1, memory_order_release);
    }
    return 0;
}

/* Runs task over [0, total) split into `threads` contiguous parts, the caller taking the first. */
static void pool_run(pool_task task, void *context, int total, int threads) {
    if (threads > POOL_MAX_THREADS) threads = POOL_MAX_THREADS;
    if (threads <= 1 || total <= 1) {
        task(context, 0, total);
        return;
    }
    pthread_mutex_lock(&pool.caller);
    while (pool.workers < threads - 1) {
        pthread_t thread;
        if (pthread_create(&thread, 0, pool_worker, (void *)(long)(pool.workers + 1)) != 0) break;
        pthread_detach(thread);
        pool.workers++;
    }
    while (atomic_load(&pool.started) < pool.workers) sched_yield(); /* each new worker has read the generation */
    const int parts = threads - 1 < pool.workers ? threads : pool.workers + 1;
    pool.task = task;
    pool.context = context;
    pool.total = total;
    pool.parts = parts;
    atomic_store_explicit(&pool.pending, pool.workers, memory_order_relaxed);
    pthread_mutex_lock(&pool.lock);
    atomic_fetch_add_explicit(&pool.generation, 1, memory_order_release);
    if (pool.sleepers) pthread_cond_broadcast(&pool.wake);
    pthread_mutex_unlock(&pool.lock);
    pool_share(0);
    for (int spins = 1; atomic_load_explicit(&pool.pending, memory_order_acquire) > 0; spins++) {
        pool_pause();
        if (spins % 1024 == 0) sched_yield();
    }
    pthread_mutex_unlock(&pool.caller);
}
