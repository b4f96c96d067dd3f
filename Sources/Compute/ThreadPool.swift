#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Synchronization

/// A fixed set of threads that run one parallel region at a time: `run` calls `body(i)` for every `i` in
/// `0..<threadCount`, `i == 0` on the calling thread, and returns when all are done.
///
/// Workers spin briefly between regions (a training step runs hundreds of short regions back to back, and waking a
/// sleeping thread costs tens of microseconds), then sleep on a condition variable. Work is split by index, never by
/// which thread happens to be free, so results depend only on `threadCount`: the same count gives the same bits.
///
/// OpenBLAS is pinned to one thread (`BLAS.pinToOneThread`) and all parallelism comes from here; OpenBLAS's own
/// worker threads spin on the same cores and halve the speed of anything else running beside them.
public final class ThreadPool: @unchecked Sendable {
    public let threadCount: Int
    private let shared: Shared
    private var finishedTarget = 0
    private var running = false

    /// How long an idle worker spins before it sleeps.
    static let spinNanoseconds: UInt64 = 500_000

    public init(threads: Int) {
        precondition(threads >= 1, "a thread pool needs at least one thread")
        threadCount = threads
        shared = Shared()
        for index in 1..<max(threads, 1) {
            let thread = Thread { [shared] in shared.workerLoop(index: index) }
            thread.stackSize = 8 << 20
            thread.name = "gpt-worker-\(index)"
            thread.start()
        }
    }

    deinit {
        shared.stop(workers: threadCount - 1)
    }

    /// Runs `body(i)` for `i` in `0..<threadCount` in parallel and waits for all of them.
    /// Regions do not nest: calling `run` from inside a body is a programming error.
    public func run(_ body: (Int) -> Void) {
        if threadCount == 1 { body(0); return }
        precondition(!running, "ThreadPool.run does not nest")
        running = true
        withoutActuallyEscaping(body) { escapable in
            shared.task = escapable
            finishedTarget += threadCount - 1
            shared.start()
            escapable(0)
            // Spin briefly (the other threads usually finish within microseconds), then yield the core: when the
            // machine is busy, a worker may be waiting for exactly the core this thread would spin on.
            var spins = 0
            while shared.finished.load(ordering: .acquiring) < finishedTarget {
                spins += 1
                if spins > 2000 { sched_yield() }
            }
            shared.task = nil
        }
        running = false
    }

    /// Splits `0..<count` into `threadCount` contiguous chunks (boundaries a multiple of `grain`) and runs `body`
    /// on each non-empty one. Counts below `serialBelow` run on the caller as one chunk.
    public func parallelFor(_ count: Int, grain: Int = 1, serialBelow: Int = 0, _ body: (Range<Int>) -> Void) {
        guard count > 0 else { return }
        if threadCount == 1 || count < max(serialBelow, 2) {
            body(0..<count)
            return
        }
        run { index in
            let range = ThreadPool.chunk(index, of: threadCount, count: count, grain: grain)
            if !range.isEmpty { body(range) }
        }
    }

    /// Like `parallelFor`, and tells each chunk which thread runs it, for per-thread scratch space.
    public func parallelChunks(_ count: Int, grain: Int = 1, serialBelow: Int = 0,
                               _ body: (_ thread: Int, _ range: Range<Int>) -> Void) {
        guard count > 0 else { return }
        if threadCount == 1 || count < max(serialBelow, 2) {
            body(0, 0..<count)
            return
        }
        run { index in
            let range = ThreadPool.chunk(index, of: threadCount, count: count, grain: grain)
            if !range.isEmpty { body(index, range) }
        }
    }

    /// The `index`-th of `parts` contiguous chunks of `0..<count`, with inner boundaries rounded to `grain`.
    public static func chunk(_ index: Int, of parts: Int, count: Int, grain: Int = 1) -> Range<Int> {
        func boundary(_ i: Int) -> Int {
            if i >= parts { return count }
            let raw = count * i / parts
            return min(count, (raw + grain / 2) / grain * grain)
        }
        let lower = boundary(index), upper = boundary(index + 1)
        return lower..<max(lower, upper)
    }

    /// What the workers share with the pool. Workers keep it alive, not the pool, so the pool can stop them from
    /// its deinit.
    private final class Shared: @unchecked Sendable {
        let generation = Atomic<Int>(0)
        let finished = Atomic<Int>(0)
        let sleepers = Atomic<Int>(0)
        let stopping = Atomic<Bool>(false)
        let exited = Atomic<Int>(0)
        let mutex: UnsafeMutablePointer<pthread_mutex_t>
        let condition: UnsafeMutablePointer<pthread_cond_t>
        var task: ((Int) -> Void)?

        init() {
            mutex = .allocate(capacity: 1)
            condition = .allocate(capacity: 1)
            pthread_mutex_init(mutex, nil)
            pthread_cond_init(condition, nil)
        }

        deinit {
            pthread_cond_destroy(condition)
            pthread_mutex_destroy(mutex)
            mutex.deallocate()
            condition.deallocate()
        }

        /// Publishes a new region: bump the generation, then wake sleepers if there are any.
        func start() {
            generation.add(1, ordering: .sequentiallyConsistent)
            if sleepers.load(ordering: .sequentiallyConsistent) > 0 {
                pthread_mutex_lock(mutex)
                pthread_cond_broadcast(condition)
                pthread_mutex_unlock(mutex)
            }
        }

        func stop(workers: Int) {
            stopping.store(true, ordering: .sequentiallyConsistent)
            start()
            while exited.load(ordering: .acquiring) < workers { sched_yield() }
        }

        func workerLoop(index: Int) {
            var seen = 0
            while true {
                var current = generation.load(ordering: .acquiring)
                if current == seen {
                    // Spin, then spin yielding the core to anything else runnable, then sleep.
                    let deadline = DispatchTime.now().uptimeNanoseconds + ThreadPool.spinNanoseconds
                    var spins = 0
                    while current == seen {
                        spins += 1
                        if spins > 2000 { sched_yield() }
                        if spins & 255 == 0, DispatchTime.now().uptimeNanoseconds > deadline {
                            sleep(until: seen)
                        }
                        current = generation.load(ordering: .acquiring)
                    }
                }
                seen = current
                if stopping.load(ordering: .acquiring) {
                    exited.add(1, ordering: .releasing)
                    return
                }
                task?(index)
                finished.add(1, ordering: .releasing)
            }
        }

        /// Blocks until the generation moves past `seen`. The sleeper count goes up before the generation is
        /// checked, and `start` bumps the generation before it reads the count, so a wake-up cannot be lost.
        private func sleep(until seen: Int) {
            pthread_mutex_lock(mutex)
            sleepers.add(1, ordering: .sequentiallyConsistent)
            while generation.load(ordering: .sequentiallyConsistent) == seen {
                pthread_cond_wait(condition, mutex)
            }
            sleepers.subtract(1, ordering: .sequentiallyConsistent)
            pthread_mutex_unlock(mutex)
        }
    }
}
