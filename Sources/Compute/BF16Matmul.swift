import CDNNL
#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// Row-major bf16 × bf16 → fp32 matrix products through oneDNN's matmul primitive, where the CPU multiplies bf16
/// natively (AVX512-BF16 on AMD Zen 4/5 and Intel Cooper Lake, AMX-BF16 tiles on Sapphire and Emerald Rapids).
///
/// `C[m×n] = op(A)[m×k] · op(B)[k×n] (+ C)`: A and B hold bf16 bit patterns (the high half of an fp32, see
/// `Kernels.BFloat16`), products accumulate in fp32, and `beta` is 0 (C is written) or 1 (the product is added to
/// C, oneDNN's sum post-op). Leading dimensions are row strides in elements, as in `Matmul.gemm`.
///
/// Like `Matmul.gemm`, a product is split over the pool by rows of C (or columns, when C is wide and short), and
/// each part is a single-threaded oneDNN product on the thread that owns it (oneDNN's OpenMP team is one thread):
/// every element is computed by the same kernel whatever the split, so results depend only on the pool's thread
/// count. Each part's primitive, memory objects, stream and scratchpad are created the first time its shape is
/// seen and reused after that; oneDNN itself still makes a few small heap allocations per execution (its execution
/// context: `allocationsPerExecution`), which no setting of its C interface avoids.
///
/// oneDNN's kernels read a transposed A (`transA`, A stored k×m) at about half their speed on Zen 4; callers that
/// can should pass A row-major (the model transposes gradients while converting them to bf16).
public enum BF16Matmul {
    /// What oneDNN runs bf16 products with on this CPU (its implementation name, e.g. `brg:avx512_core_bf16` or
    /// `brg:avx512_core_amx`), or nil when this CPU has no bf16 instructions or oneDNN has no bf16 matmul for it.
    /// Then bf16 precision is emulated exactly on the fp32 sgemm (`Kernels.BFloat16`).
    public static var implementation: String? { state.implementation }

    /// Whether bf16 products run natively through oneDNN here.
    public static var isAvailable: Bool { state.implementation != nil }

    /// Products smaller than this many multiply-adds run on the calling thread (as `Matmul.parallelThreshold`).
    public static let parallelThreshold = 1 << 18

    public static func gemm(
        _ pool: ThreadPool,
        transA: Bool = false, transB: Bool,
        m: Int, n: Int, k: Int,
        a: UnsafePointer<UInt16>, lda: Int,
        b: UnsafePointer<UInt16>, ldb: Int,
        beta: Float,
        c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        precondition(beta == 0 || beta == 1, "BF16Matmul.gemm: beta is 0 or 1, not \(beta)")
        precondition(isAvailable, "BF16Matmul.gemm: this CPU has no native bf16 products (check isAvailable first)")
        let product = Product(transA: transA, transB: transB, m: m, n: n, k: k, a: a, lda: lda, b: b, ldb: ldb,
                              accumulate: beta == 1, c: c, ldc: ldc)
        if pool.threadCount == 1 || m * n * k < parallelThreshold {
            product.run(part: 0, of: 1)
        } else {
            pool.run(product)
        }
    }

    /// `C = alpha·op(A)·op(B) (+ C)` on the calling thread, for kernels that split their own work over a pool
    /// (fused attention's tiles). `alpha` is applied to the fp32 accumulator before C is added (oneDNN's output
    /// scale): the product of each distinct alpha, shape, stride and transpose has its own cached primitive.
    public static func serial(transA: Bool = false, transB: Bool, m: Int, n: Int, k: Int, alpha: Float = 1,
                              a: UnsafePointer<UInt16>, lda: Int, b: UnsafePointer<UInt16>, ldb: Int,
                              beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
        precondition(beta == 0 || beta == 1, "BF16Matmul.serial: beta is 0 or 1, not \(beta)")
        precondition(isAvailable, "BF16Matmul.serial: this CPU has no native bf16 products (check isAvailable first)")
        serial(slot: 0, transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb,
               accumulate: beta == 1, c: c, ldc: ldc)
    }

    struct Product: ParallelWork {
        let transA: Bool, transB: Bool
        let m: Int, n: Int, k: Int
        let a: UnsafePointer<UInt16>, lda: Int
        let b: UnsafePointer<UInt16>, ldb: Int
        let accumulate: Bool
        let c: UnsafeMutablePointer<Float>, ldc: Int

        func run(part: Int, of parts: Int) {
            guard let p = ProductPart(part, of: parts, m: m, n: n, transA: transA, transB: transB, lda: lda, ldb: ldb,
                                      ldc: ldc) else { return }
            serial(slot: part, transA: transA, transB: transB, m: p.m, n: p.n, k: k, a: a + p.aOffset, lda: lda,
                   b: b + p.bOffset, ldb: ldb, accumulate: accumulate, c: c + p.cOffset, ldc: ldc)
        }
    }

    /// One product on the calling thread, through the primitive cached for its shape and this thread (each entry's
    /// memory objects and scratchpad are rebound and used by one thread only, whatever pools run at once).
    static func serial(slot: Int, transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float = 1,
                       a: UnsafePointer<UInt16>, lda: Int, b: UnsafePointer<UInt16>, ldb: Int,
                       accumulate: Bool, c: UnsafeMutablePointer<Float>, ldc: Int) {
        guard m > 0, n > 0 else { return }
        if k == 0 {
            if !accumulate { for i in 0..<m { (c + i * ldc).update(repeating: 0, count: n) } }
            return
        }
        let key = Key(thread: UInt(bitPattern: Int(bitPattern: UInt(pthread_self()))), transA: transA, transB: transB, m: m, n: n, k: k, lda: lda, ldb: ldb, ldc: ldc,
                      accumulate: accumulate, alpha: alpha)
        let entry = state.cache.withLock { cache in
            if let entry = cache[key] { return entry }
            let entry = Entry(key, engine: state.engine!)
            cache[key] = entry
            return entry
        }
        entry.execute(a: a, b: b, c: c)
    }

    /// oneDNN executions so far (one per product part), and those among them that add to C (sum post-op): for
    /// accounting for oneDNN's own allocations in tests.
    public static var executionCount: Int { executions.load(ordering: .relaxed) }
    public static var accumulatingExecutionCount: Int { accumulatingExecutions.load(ordering: .relaxed) }
    /// The heap allocations oneDNN made inside those executions, by `allocationsPerExecution` of each one's
    /// implementation and post-op, and the executions of implementations whose allocations were never measured.
    public static var executionAllocationCount: Int { executionAllocations.load(ordering: .relaxed) }
    public static var unmeasuredExecutionCount: Int { unmeasuredExecutions.load(ordering: .relaxed) }
    static let executions = Atomic<Int>(0), accumulatingExecutions = Atomic<Int>(0)
    static let executionAllocations = Atomic<Int>(0), unmeasuredExecutions = Atomic<Int>(0)

    /// The implementations oneDNN picked for the products run so far.
    public static var implementationsInUse: Set<String> {
        state.cache.withLock { Set($0.values.map(\.implementation)) }
    }

    /// Heap allocations oneDNN makes inside one `dnnl_primitive_execute` of a matmul with a user scratchpad
    /// (measured with the test suite's allocation counter on oneDNN 2.6.3 on Zen 4), all for its execution context
    /// (the argument map): its AVX512-BF16 brgemm kernel (`brg:avx512_core_bf16`, the large products) makes 6, and 7
    /// with a sum post-op; its gemm-based kernel (`gemm:jit`, which it picks for small products on strided operands
    /// such as attention's tiles) makes 5, and 8 with a sum post-op. nil for an implementation not measured (AMX's,
    /// for one). The step's own code allocates nothing.
    public static func allocationsPerExecution(implementation: String, accumulating: Bool) -> Int? {
        switch implementation {
        case "brg:avx512_core_bf16": accumulating ? 7 : 6
        case "gemm:jit": accumulating ? 8 : 5
        default: nil
        }
    }

    // MARK: Primitives

    struct Key: Hashable {
        /// The thread (`pthread_self`) that runs this product part.
        var thread: UInt
        var transA: Bool, transB: Bool
        var m: Int, n: Int, k: Int
        var lda: Int, ldb: Int, ldc: Int
        var accumulate: Bool
        /// The output scale (1: none).
        var alpha: Float
    }

    /// One shape's primitive with its memory objects (rebound to each call's buffers), stream and scratchpad.
    final class Entry: @unchecked Sendable {
        let primitive: dnnl_primitive_t
        let stream: dnnl_stream_t
        let a: dnnl_memory_t, b: dnnl_memory_t, c: dnnl_memory_t, scratch: dnnl_memory_t
        let scratchBuffer: UnsafeMutableRawPointer
        let accumulate: Bool
        /// What oneDNN runs this product with, and its `allocationsPerExecution`.
        let implementation: String
        let allocations: Int?
        var arguments: [dnnl_exec_arg_t]

        init(_ key: Key, engine: dnnl_engine_t) {
            omp_set_num_threads(1)
            accumulate = key.accumulate
            var aDesc = dnnl_memory_desc_t(), bDesc = dnnl_memory_desc_t(), cDesc = dnnl_memory_desc_t()
            BF16Matmul.describe(&aDesc, rows: key.m, columns: key.k, type: dnnl_bf16, stride: key.lda, transposed: key.transA)
            BF16Matmul.describe(&bDesc, rows: key.k, columns: key.n, type: dnnl_bf16, stride: key.ldb, transposed: key.transB)
            BF16Matmul.describe(&cDesc, rows: key.m, columns: key.n, type: dnnl_f32, stride: key.ldc, transposed: false)
            guard let pd = BF16Matmul.primitiveDescriptor(a: &aDesc, b: &bDesc, c: &cDesc, accumulate: key.accumulate,
                                                          alpha: key.alpha, engine: engine)
            else { preconditionFailure("oneDNN created a bf16 matmul at start-up but not for \(key)") }
            defer { dnnl_primitive_desc_destroy(pd) }
            implementation = BF16Matmul.implementationName(pd)
            allocations = BF16Matmul.allocationsPerExecution(implementation: implementation, accumulating: key.accumulate)
            var primitive: dnnl_primitive_t?
            BF16Matmul.check(dnnl_primitive_create(&primitive, pd), "dnnl_primitive_create")
            self.primitive = primitive!
            var stream: dnnl_stream_t?
            BF16Matmul.check(dnnl_stream_create(&stream, engine, UInt32(dnnl_stream_default_flags.rawValue)),
                             "dnnl_stream_create")
            self.stream = stream!
            let scratchDesc = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0)!
            let scratchBytes = dnnl_memory_desc_get_size(scratchDesc)
            scratchBuffer = .allocate(byteCount: max(scratchBytes, 64), alignment: 64)
            func memory(_ desc: UnsafePointer<dnnl_memory_desc_t>, _ handle: UnsafeMutableRawPointer?) -> dnnl_memory_t {
                var m: dnnl_memory_t?
                // DNNL_MEMORY_NONE: no buffer of oneDNN's own; each call binds its pointer.
                BF16Matmul.check(dnnl_memory_create(&m, desc, engine, handle), "dnnl_memory_create")
                return m!
            }
            a = memory(&aDesc, nil)
            b = memory(&bDesc, nil)
            c = memory(&cDesc, nil)
            scratch = memory(scratchDesc, scratchBuffer)
            arguments = [dnnl_exec_arg_t(arg: BF16Matmul.argSource, memory: a),
                         dnnl_exec_arg_t(arg: BF16Matmul.argWeights, memory: b),
                         dnnl_exec_arg_t(arg: BF16Matmul.argDestination, memory: c),
                         dnnl_exec_arg_t(arg: BF16Matmul.argScratchpad, memory: scratch)]
        }

        func execute(a aPointer: UnsafePointer<UInt16>, b bPointer: UnsafePointer<UInt16>, c cPointer: UnsafeMutablePointer<Float>) {
            omp_set_num_threads(1)
            BF16Matmul.check(dnnl_memory_set_data_handle(a, UnsafeMutableRawPointer(mutating: aPointer)), "set_data_handle")
            BF16Matmul.check(dnnl_memory_set_data_handle(b, UnsafeMutableRawPointer(mutating: bPointer)), "set_data_handle")
            BF16Matmul.check(dnnl_memory_set_data_handle(c, UnsafeMutableRawPointer(cPointer)), "set_data_handle")
            let status = arguments.withUnsafeBufferPointer {
                dnnl_primitive_execute(primitive, stream, Int32($0.count), $0.baseAddress)
            }
            BF16Matmul.check(status, "dnnl_primitive_execute")
            BF16Matmul.executions.add(1, ordering: .relaxed)
            if accumulate { BF16Matmul.accumulatingExecutions.add(1, ordering: .relaxed) }
            if let allocations {
                BF16Matmul.executionAllocations.add(allocations, ordering: .relaxed)
            } else {
                BF16Matmul.unmeasuredExecutions.add(1, ordering: .relaxed)
            }
        }
    }

    // DNNL_ARG_SRC, DNNL_ARG_WEIGHTS, DNNL_ARG_DST and DNNL_ARG_SCRATCHPAD (dnnl_types.h).
    static let argSource: Int32 = 1, argWeights: Int32 = 33, argDestination: Int32 = 17, argScratchpad: Int32 = 80

    /// A rows×columns matrix whose rows are `stride` elements apart, or, `transposed`, stored columns×rows.
    static func describe(_ desc: inout dnnl_memory_desc_t, rows: Int, columns: Int, type: dnnl_data_type_t,
                         stride: Int, transposed: Bool) {
        // dnnl_dims_t is a 12-element array in C (only this descriptor's creation touches the heap).
        var dims = [Int64](repeating: 0, count: 12), strides = [Int64](repeating: 0, count: 12)
        dims[0] = Int64(rows); dims[1] = Int64(columns)
        strides[0] = transposed ? 1 : Int64(stride); strides[1] = transposed ? Int64(stride) : 1
        let status = dnnl_memory_desc_init_by_strides(&desc, 2, dims, type, strides)
        check(status, "dnnl_memory_desc_init_by_strides")
    }

    /// The matmul's primitive descriptor with a user-managed scratchpad (and the sum post-op to accumulate), or nil
    /// when oneDNN has no implementation for it on this CPU.
    static func primitiveDescriptor(a: inout dnnl_memory_desc_t, b: inout dnnl_memory_desc_t, c: inout dnnl_memory_desc_t,
                                    accumulate: Bool, alpha: Float = 1, engine: dnnl_engine_t) -> dnnl_primitive_desc_t? {
        var op = dnnl_matmul_desc_t()
        guard dnnl_matmul_desc_init(&op, &a, &b, nil, &c) == dnnl_success else { return nil }
        var attr: dnnl_primitive_attr_t?
        check(dnnl_primitive_attr_create(&attr), "dnnl_primitive_attr_create")
        defer { dnnl_primitive_attr_destroy(attr) }
        check(dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user), "set_scratchpad_mode")
        if alpha != 1 {
            var scale = alpha
            check(dnnl_primitive_attr_set_output_scales(attr, 1, 0, &scale), "dnnl_primitive_attr_set_output_scales")
        }
        if accumulate {
            var ops: dnnl_post_ops_t?
            check(dnnl_post_ops_create(&ops), "dnnl_post_ops_create")
            defer { dnnl_post_ops_destroy(ops) }
            check(dnnl_post_ops_append_sum(ops, 1), "dnnl_post_ops_append_sum")
            check(dnnl_primitive_attr_set_post_ops(attr, ops), "dnnl_primitive_attr_set_post_ops")
        }
        var pd: dnnl_primitive_desc_t?
        guard dnnl_primitive_desc_create(&pd, &op, attr, engine, nil) == dnnl_success else { return nil }
        return pd
    }

    /// The implementation a primitive descriptor picked (`brg:avx512_core_bf16`, `gemm:jit`, ...).
    static func implementationName(_ pd: dnnl_primitive_desc_t) -> String {
        var info: UnsafePointer<CChar>?
        _ = withUnsafeMutablePointer(to: &info) { dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, $0) }
        return info.map { String(cString: $0) } ?? "unknown"
    }

    static func check(_ status: dnnl_status_t, _ call: String) {
        precondition(status == dnnl_success, "oneDNN: \(call) failed with status \(status.rawValue)")
    }

    // MARK: State

    final class State: @unchecked Sendable {
        let engine: dnnl_engine_t?
        let implementation: String?
        let cache = Mutex<[Key: Entry]>([:])
        init(engine: dnnl_engine_t?, implementation: String?) {
            self.engine = engine
            self.implementation = implementation
        }
    }

    /// The CPU engine and what it runs a bf16 matmul with, probed once: no engine and no implementation when the
    /// CPU has no bf16 instructions (`CPU.hasBF16`) or oneDNN offers only its reference kernels for it.
    static let state: State = {
        guard CPU.hasBF16 else { return State(engine: nil, implementation: nil) }
        omp_set_num_threads(1)
        var engine: dnnl_engine_t?
        guard dnnl_engine_create(&engine, dnnl_cpu, 0) == dnnl_success, let engine else {
            return State(engine: nil, implementation: nil)
        }
        var a = dnnl_memory_desc_t(), b = dnnl_memory_desc_t(), c = dnnl_memory_desc_t()
        describe(&a, rows: 64, columns: 64, type: dnnl_bf16, stride: 64, transposed: false)
        describe(&b, rows: 64, columns: 64, type: dnnl_bf16, stride: 64, transposed: true)
        describe(&c, rows: 64, columns: 64, type: dnnl_f32, stride: 64, transposed: false)
        guard let pd = primitiveDescriptor(a: &a, b: &b, c: &c, accumulate: true, engine: engine) else {
            return State(engine: engine, implementation: nil)
        }
        defer { dnnl_primitive_desc_destroy(pd) }
        let name = implementationName(pd)
        // oneDNN's reference matmul ("ref:any") converts element by element: far slower than emulating on sgemm.
        return State(engine: engine, implementation: name.hasPrefix("ref") ? nil : name)
    }()
}
