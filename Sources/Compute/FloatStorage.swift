#if canImport(Glibc)
import Glibc
#endif

/// Allocations for tensor families: 64-byte aligned, and, from 4 MiB on, aligned to 2 MiB and advised to the kernel
/// as transparent huge pages (`madvise(MADV_HUGEPAGE)`; Debian's default THP mode is `madvise`, so without the
/// advice every buffer is mapped in 4 KiB pages). Large streaming passes (AdamW over every parameter, the bf16
/// conversions) and the matrix kernels then miss the TLB far less often.
public enum LargeAllocation {
    public static let hugePageBytes = 2 << 20

    public static func allocate(byteCount: Int) -> UnsafeMutableRawPointer {
        guard byteCount >= 2 * hugePageBytes else { return .allocate(byteCount: byteCount, alignment: 64) }
        let rounded = (byteCount + hugePageBytes - 1) / hugePageBytes * hugePageBytes
        let raw = UnsafeMutableRawPointer.allocate(byteCount: rounded, alignment: hugePageBytes)
        #if canImport(Glibc)
        _ = madvise(raw, rounded, MADV_HUGEPAGE)   // advice only: where THP is off, 4 KiB pages as before
        #endif
        return raw
    }
}

/// One owned, 64-byte aligned, zero-filled allocation of floats: the storage behind a family of tensors
/// (all parameters, all gradients, all activations), each a named view at an offset.
///
/// Not `Sendable`: the floats are shared mutable memory with no synchronisation of their own. Parallel kernels
/// reach them through pointers handed to a `ThreadPool` region, whose start and end order the accesses.
public final class FloatStorage {
    public let count: Int
    public let base: UnsafeMutablePointer<Float>

    public init(count: Int) {
        precondition(count >= 0)
        self.count = count
        let raw = LargeAllocation.allocate(byteCount: max(count, 1) * 4)
        base = raw.bindMemory(to: Float.self, capacity: max(count, 1))
        base.initialize(repeating: 0, count: max(count, 1))
    }

    deinit { UnsafeMutableRawPointer(base).deallocate() }

    public var buffer: UnsafeMutableBufferPointer<Float> { .init(start: base, count: count) }

    public func zero() { base.update(repeating: 0, count: count) }

    public var bytes: Int { count * 4 }
}
