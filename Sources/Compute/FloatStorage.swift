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
        let raw = UnsafeMutableRawPointer.allocate(byteCount: max(count, 1) * 4, alignment: 64)
        base = raw.bindMemory(to: Float.self, capacity: max(count, 1))
        base.initialize(repeating: 0, count: max(count, 1))
    }

    deinit { UnsafeMutableRawPointer(base).deallocate() }

    public var buffer: UnsafeMutableBufferPointer<Float> { .init(start: base, count: count) }

    public func zero() { base.update(repeating: 0, count: count) }

    public var bytes: Int { count * 4 }
}
