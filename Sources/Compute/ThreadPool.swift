#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Synchronization

/// Work for one parallel region: `run(part:of:)` is called once for every thread, with the thread's index.
///
/// Workers reach the work through a pointer and its type's metadata (an existential metatype, which is never
/// boxed), so starting a region allocates nothing.
public protocol ParallelWork {
    func run(part: Int, of parts: Int)
    static func run(_ work: UnsafeRawPointer, part: Int, of parts: Int)
}

extension ParallelWork {
    public static func run(_ work: UnsafeRawPointer, part: Int, of parts: Int) {
        work.assumingMemoryBound(to: Self.self).pointee.run(part: part, of: parts)
    }
}

/// A fixed set of threads that run one parallel region at a time, `threadCount` parts of it at once, part 0 on the
/// calling thread.
///
/// Workers spin briefly between regions (a training step runs hundreds of short regions back to back, and waking a
/// sleeping thread costs tens of microseconds), then sleep on a condition variable. Work is split by index, never by
/// which thread happens to be free, so results depend only on `threadCount`: the same count gives the same bits.
///
/// **Bodies capture nothing.** Everything a body needs comes through `args`, a value (usually a tuple) copied into
/// the region. A capture-free closure has no context, so a region allocates nothing, and a training step made of
/// regions allocates nothing either; a capturing closure still works but allocates its context every call. (Handing
/// a non-escaping closure to other threads would box it: `withoutActuallyEscaping` allocates.)
///
/// OpenBLAS is pinned to one thread (`BLAS.pinToOneThread`) and all parallelism comes from here; OpenBLAS's own
/// worker threads spin on the same cores and halve the speed of anything else running beside them.
///
/// One region runs at a time. `running` is taken atomically when a region starts, so a region started inside
/// another (nesting) or from a second thread while one runs stops the program with a message in every build: a
/// programming error, never a data race. `finishedTarget` is touched only by the thread holding `running`, and the
/// workers see a region's work through the generation counter's release/acquire ordering: that is what makes the
/// `Sendable` claim true.
public final class ThreadPool: @unchecked Sendable {
    public let threadCount: Int
    private let shared: Shared
    /// Guarded by `running`.
    private var finishedTarget = 0
    private let running = Atomic<Bool>(false)

    /// How long an idle worker spins before it sleeps.
    static let spinNanoseconds: UInt64 = 500_000

    public init(threads: Int) {
        precondition(threads >= 1, "a thread pool needs at least one thread")
        threadCount = threads
        shared = Shared()
        for index in 1..<max(threads, 1) {
            let thread = Thread { [shared] in shared.workerLoop(index: index, parts: threads) }
            thread.stackSize = 8 << 20
            thread.name = "gpt-worker-\(index)"
            thread.start()
        }
    }

    deinit {
        shared.stop(workers: threadCount - 1)
    }

    /// Runs every part of `work` in parallel and waits for all of them. Regions do not nest.
    public func run<W: ParallelWork>(_ work: W) {
        if threadCount == 1 { work.run(part: 0, of: 1); return }
        let (started, _) = running.compareExchange(expected: false, desired: true, ordering: .acquiring)
        precondition(started, "ThreadPool.run: a region is already running (regions do not nest, and a pool serves one thread at a time)")
        withUnsafePointer(to: work) { pointer in
            shared.work = UnsafeRawPointer(pointer)
            shared.workType = W.self
            finishedTarget += threadCount - 1
            shared.start()
            work.run(part: 0, of: threadCount)
            // Spin briefly (the other threads usually finish within microseconds), then yield the core: when the
            // machine is busy, a worker may be waiting for exactly the core this thread would spin on.
            var spins = 0
            while shared.finished.load(ordering: .acquiring) < finishedTarget {
                spins += 1
                if spins > 2000 { sched_yield() }
            }
            shared.work = nil
            shared.workType = nil
        }
        running.store(false, ordering: .releasing)
    }

    /// Splits `0..<count` into `threadCount` contiguous chunks (inner boundaries a multiple of `grain`) and runs
    /// `body(args, chunk)` on each non-empty one. Counts below `serialBelow` run on the caller as one chunk.
    public func parallelFor<Args>(_ count: Int, grain: Int = 1, serialBelow: Int = 0, _ args: Args,
                                  _ body: @escaping (Args, Range<Int>) -> Void) {
        guard count > 0 else { return }
        if threadCount == 1 || count < max(serialBelow, 2) {
            body(args, 0..<count)
            return
        }
        run(RangeWork(args: args, count: count, grain: grain, body: body))
    }

    /// Like `parallelFor`, and tells each chunk which thread runs it (`body(args, thread, chunk)`), for
    /// per-thread scratch space.
    public func parallelChunks<Args>(_ count: Int, grain: Int = 1, serialBelow: Int = 0, _ args: Args,
                                     _ body: @escaping (Args, _ thread: Int, _ range: Range<Int>) -> Void) {
        guard count > 0 else { return }
        if threadCount == 1 || count < max(serialBelow, 2) {
            body(args, 0, 0..<count)
            return
        }
        run(ThreadRangeWork(args: args, count: count, grain: grain, body: body))
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

    struct RangeWork<Args>: ParallelWork {
        let args: Args
        let count: Int, grain: Int
        let body: (Args, Range<Int>) -> Void
        func run(part: Int, of parts: Int) {
            let range = ThreadPool.chunk(part, of: parts, count: count, grain: grain)
            if !range.isEmpty { body(args, range) }
        }
    }

    struct ThreadRangeWork<Args>: ParallelWork {
        let args: Args
        let count: Int, grain: Int
        let body: (Args, Int, Range<Int>) -> Void
        func run(part: Int, of parts: Int) {
            let range = ThreadPool.chunk(part, of: parts, count: count, grain: grain)
            if !range.isEmpty { body(args, part, range) }
        }
    }

    /// What the workers share with the pool. Workers keep it alive, not the pool, so the pool can stop them from
    /// its deinit. `work` and `workType` are written only between regions, by the thread holding the pool's
    /// `running` flag, before `start` publishes them with a sequentially consistent increment of `generation`;
    /// workers read them only after an acquiring load sees that increment, and the pool clears them only after
    /// every worker has reported (releasing) to `finished`.
    private final class Shared: @unchecked Sendable {
        let generation = Atomic<Int>(0)
        let finished = Atomic<Int>(0)
        let sleepers = Atomic<Int>(0)
        let stopping = Atomic<Bool>(false)
        let exited = Atomic<Int>(0)
        let mutex: UnsafeMutablePointer<pthread_mutex_t>
        let condition: UnsafeMutablePointer<pthread_cond_t>
        var work: UnsafeRawPointer?
        var workType: (any ParallelWork.Type)?

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

        func workerLoop(index: Int, parts: Int) {
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
                if let work, let workType { workType.run(work, part: index, of: parts) }
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
