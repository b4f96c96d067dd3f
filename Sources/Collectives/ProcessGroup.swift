import CMPI
import Foundation

/// What went wrong in a collective operation, for callers to switch on.
public enum CollectiveError: Error, Equatable, CustomStringConvertible {
    /// MPI could not start, or started with less thread support than the toolkit needs.
    case initialization(String)
    /// An MPI call returned an error code.
    case call(function: String, code: Int32, message: String)
    /// A buffer too large for MPI's 32-bit counts, or sizes that differ between the calls of one operation.
    case size(String)

    public var description: String {
        switch self {
        case .initialization(let reason): return "MPI could not start: \(reason)"
        case .call(let function, let code, let message): return "\(function) failed (MPI error \(code)): \(message)"
        case .size(let reason): return reason
        }
    }
}

/// How this process was launched: alone, or as one rank of an `mpirun` job. Read from the variables Open MPI's
/// launcher sets (`OMPI_COMM_WORLD_SIZE`, `OMPI_COMM_WORLD_RANK`, `OMPI_COMM_WORLD_LOCAL_SIZE`), so a program can
/// know before it starts MPI whether it should.
public struct Launch: Equatable, Sendable {
    public var worldSize: Int
    public var rank: Int
    /// Ranks on this machine, and this rank's index among them.
    public var localSize: Int
    public var localRank: Int

    public init(worldSize: Int, rank: Int, localSize: Int, localRank: Int) {
        self.worldSize = worldSize
        self.rank = rank
        self.localSize = localSize
        self.localRank = localRank
    }

    public static let single = Launch(worldSize: 1, rank: 0, localSize: 1, localRank: 0)

    /// Nil when the variables are absent (not under `mpirun`).
    public static func fromEnvironment(_ environment: [String: String] = ProcessInfo.processInfo.environment) -> Launch? {
        guard let size = environment["OMPI_COMM_WORLD_SIZE"].flatMap(Int.init),
              let rank = environment["OMPI_COMM_WORLD_RANK"].flatMap(Int.init), size >= 1, (0..<size).contains(rank)
        else { return nil }
        let localSize = environment["OMPI_COMM_WORLD_LOCAL_SIZE"].flatMap(Int.init) ?? 1
        let localRank = environment["OMPI_COMM_WORLD_LOCAL_RANK"].flatMap(Int.init) ?? 0
        return Launch(worldSize: size, rank: rank, localSize: max(localSize, 1), localRank: localRank)
    }
}

/// The processes of one data-parallel job, and the collectives among them (Open MPI's `MPI_COMM_WORLD`).
///
/// A group of one (a process not started by `mpirun`) never touches MPI: every collective is the identity. Only
/// the thread that made the group calls MPI (`MPI_THREAD_FUNNELED`); errors come back as `CollectiveError`
/// (the communicator's handler is `MPI_ERRORS_RETURN`), and `abort(code:)` ends every rank of the job.
public final class ProcessGroup {
    public let rank: Int
    public let size: Int
    public let launch: Launch
    /// Wall-clock seconds spent inside collectives since the group was made.
    public private(set) var communicationSeconds: Double = 0
    let comm: MPI_Comm?
    private var finalized = false
    /// One double per rank, for `orderedSum` (made once, so that a training step allocates nothing).
    private let gathered: UnsafeMutablePointer<Double>

    /// A group of one process: collectives return at once.
    public static func single() -> ProcessGroup { ProcessGroup(launch: .single, comm: nil) }

    /// The job this process belongs to: MPI's world when launched by `mpirun` (MPI is initialised here), else a
    /// group of one.
    public static func fromLaunch(_ launch: Launch? = Launch.fromEnvironment()) throws -> ProcessGroup {
        guard let launch, launch.worldSize > 1 else { return .single() }
        var provided: Int32 = 0
        let status = MPI_Init_thread(nil, nil, Int32(gpt_MPI_THREAD_FUNNELED()), &provided)
        guard status == gpt_MPI_SUCCESS() else {
            throw CollectiveError.initialization("MPI_Init_thread returned \(status)")
        }
        guard provided >= gpt_MPI_THREAD_FUNNELED() else {
            throw CollectiveError.initialization("the MPI library gives thread level \(provided), below MPI_THREAD_FUNNELED")
        }
        let world = gpt_MPI_COMM_WORLD()
        MPI_Comm_set_errhandler(world, gpt_MPI_ERRORS_RETURN())
        var rank: Int32 = 0, size: Int32 = 0
        MPI_Comm_rank(world, &rank)
        MPI_Comm_size(world, &size)
        var actual = launch
        actual.rank = Int(rank)
        actual.worldSize = Int(size)
        return ProcessGroup(launch: actual, comm: world)
    }

    init(launch: Launch, comm: MPI_Comm?) {
        self.launch = launch
        self.rank = launch.rank
        self.size = launch.worldSize
        self.comm = comm
        gathered = .allocate(capacity: max(launch.worldSize, 1))
    }

    deinit {
        finalize()
        gathered.deallocate()
    }

    public var isDistributed: Bool { comm != nil }

    /// Ends MPI in this process (collective: every rank calls it). Later collectives are errors.
    public func finalize() {
        guard comm != nil, !finalized else { return }
        finalized = true
        MPI_Finalize()
    }

    /// Ends the whole job: every rank stops and `mpirun` exits with `code`. In a group of one, the process exits.
    public func abort(code: Int32) -> Never {
        if let comm, !finalized { MPI_Abort(comm, code) }
        exit(code)
    }

    /// Runs one MPI call, timing it and turning its status into an error.
    @inline(__always)
    func call(_ function: String, _ body: () -> Int32) throws {
        let start = DispatchTime.now().uptimeNanoseconds
        let status = body()
        communicationSeconds += Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9
        guard status == gpt_MPI_SUCCESS() else {
            throw CollectiveError.call(function: function, code: status, message: Self.errorString(status))
        }
    }

    static func errorString(_ code: Int32) -> String {
        var buffer = [CChar](repeating: 0, count: Int(gpt_MPI_MAX_ERROR_STRING()) + 1)
        var length: Int32 = 0
        MPI_Error_string(code, &buffer, &length)
        return String(decoding: buffer.prefix(Int(max(length, 0))).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Waits until every rank has arrived.
    public func barrier() throws {
        guard let comm else { return }
        try call("MPI_Barrier") { MPI_Barrier(comm) }
    }

    /// Element-wise sum (or maximum) of small double vectors over ranks, in place on every rank: losses, norms,
    /// counters. The order of the sum is MPI's; use `FloatReducer` where bit-exact repeatability matters.
    public func allReduce(_ values: UnsafeMutableBufferPointer<Double>, maximum: Bool = false) throws {
        guard let comm, values.count > 0 else { return }
        guard values.count <= Int(Int32.max) else { throw CollectiveError.size("\(values.count) doubles exceed MPI's 32-bit counts") }
        try call("MPI_Allreduce") {
            MPI_Allreduce(gpt_MPI_IN_PLACE(), values.baseAddress, Int32(values.count), gpt_MPI_DOUBLE(),
                          maximum ? gpt_MPI_MAX() : gpt_MPI_SUM(), comm)
        }
    }

    /// The sum of one double over ranks, added in rank order 0, 1, …, K−1 (an all-gather, then a local sum), so
    /// that every rank gets the same bits and a run repeats exactly: for losses and gradient norms that decide what
    /// every rank does next.
    public func orderedSum(_ value: Double) throws -> Double {
        guard let comm else { return value }
        var mine = value
        let all = gathered
        try call("MPI_Allgather") { MPI_Allgather(&mine, 1, gpt_MPI_DOUBLE(), all, 1, gpt_MPI_DOUBLE(), comm) }
        var sum = all[0]
        for r in 1..<size { sum += all[r] }
        return sum
    }

    /// The sum of one double over ranks.
    public func sum(_ value: Double) throws -> Double {
        var x = value
        try withUnsafeMutablePointer(to: &x) { try allReduce(UnsafeMutableBufferPointer(start: $0, count: 1)) }
        return x
    }

    /// The maximum of one double over ranks.
    public func maximum(_ value: Double) throws -> Double {
        var x = value
        try withUnsafeMutablePointer(to: &x) { try allReduce(UnsafeMutableBufferPointer(start: $0, count: 1), maximum: true) }
        return x
    }

    /// Sends `root`'s bytes to every rank; other ranks' buffers must have the same count (check with `broadcastCount`).
    public func broadcast(_ bytes: UnsafeMutableRawBufferPointer, root: Int = 0) throws {
        guard let comm, bytes.count > 0 else { return }
        var offset = 0
        // MPI counts are 32-bit: send in pieces of at most 1 GiB.
        while offset < bytes.count {
            let n = min(bytes.count - offset, 1 << 30)
            try call("MPI_Bcast") { MPI_Bcast(bytes.baseAddress! + offset, Int32(n), gpt_MPI_BYTE(), Int32(root), comm) }
            offset += n
        }
    }

    /// `root`'s value of an integer, on every rank.
    public func broadcast(_ value: Int, root: Int = 0) throws -> Int {
        var x = Int64(value)
        try withUnsafeMutableBytes(of: &x) { try broadcast($0, root: root) }
        return Int(x)
    }

    /// `root`'s byte array on every rank (its length first, then the bytes).
    public func broadcast(_ data: [UInt8], root: Int = 0) throws -> [UInt8] {
        guard isDistributed else { return data }
        let count = try broadcast(data.count, root: root)
        var result = rank == root ? data : [UInt8](repeating: 0, count: count)
        try result.withUnsafeMutableBytes { try broadcast($0, root: root) }
        return result
    }
}
