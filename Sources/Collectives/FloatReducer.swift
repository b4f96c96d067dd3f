import CMPI

/// Sums one float buffer over the ranks of a group in a fixed order, so that every rank gets the same bits and a
/// run repeats bit for bit: the buffer is cut into one contiguous shard per rank; an all-to-all sends each rank
/// every other rank's copy of its shard; each rank adds the copies in rank order 0, 1, …, K−1; an all-gather
/// returns the summed shards to everyone. Each rank sends and receives (K−1)/K of the buffer twice, the volume of a
/// ring all-reduce (Patarasuk & Yuan 2009).
///
/// The two halves are also ZeRO stage 1's (Rajbhandari et al. 2020): `reduceScatter` leaves each rank the sum of
/// its own shard only (where it updates its share of the optimizer state), and `allGather` spreads the updated
/// shards. Counts, displacements and the receive buffer are made once here, so a reduction allocates nothing.
public final class FloatReducer {
    public let group: ProcessGroup
    public let count: Int
    /// Each rank's shard of the buffer, boundaries at multiples of 16 floats (64 bytes).
    public let shards: [Range<Int>]
    private var sendCounts: [Int32]
    private var sendOffsets: [Int32]
    private var receiveCounts: [Int32]
    private var receiveOffsets: [Int32]
    private let scratch: UnsafeMutablePointer<Float>

    public init(group: ProcessGroup, count: Int) throws {
        precondition(count >= 0)
        self.group = group
        self.count = count
        let k = group.size
        let per = ((count + k - 1) / k + 15) / 16 * 16
        shards = (0..<k).map { r in min(r * per, count)..<min((r + 1) * per, count) }
        guard count <= Int(Int32.max) else {
            throw CollectiveError.size("a buffer of \(count) floats exceeds MPI's 32-bit counts; reduce it in pieces")
        }
        let mine = shards[group.rank].count
        sendCounts = shards.map { Int32($0.count) }
        sendOffsets = shards.map { Int32($0.lowerBound) }
        receiveCounts = [Int32](repeating: Int32(mine), count: k)
        receiveOffsets = (0..<k).map { Int32($0 * mine) }
        // Every rank's copy of this rank's shard; a group of one reduces nothing and needs none.
        scratch = .allocate(capacity: group.isDistributed ? max(mine * k, 1) : 1)
    }

    deinit { scratch.deallocate() }

    public var myShard: Range<Int> { shards[group.rank] }

    /// Afterwards `buffer[myShard]` holds the sum over ranks (times `scale`); the rest of `buffer` is unchanged.
    public func reduceScatter(_ buffer: UnsafeMutablePointer<Float>, scale: Float = 1) throws {
        let k = group.size
        let shard = myShard
        guard let comm = group.comm else {
            if scale != 1 { for i in 0..<count { buffer[i] *= scale } }
            return
        }
        try group.call("MPI_Alltoallv") {
            MPI_Alltoallv(buffer, sendCounts, sendOffsets, gpt_MPI_FLOAT(),
                          scratch, receiveCounts, receiveOffsets, gpt_MPI_FLOAT(), comm)
        }
        let n = shard.count
        let out = buffer + shard.lowerBound
        for i in 0..<n { out[i] = scratch[i] }
        for r in 1..<k {
            let part = scratch + r * n
            for i in 0..<n { out[i] += part[i] }
        }
        if scale != 1 { for i in 0..<n { out[i] *= scale } }
    }

    /// Afterwards every rank's `buffer` holds every rank's shard as that rank had it.
    public func allGather(_ buffer: UnsafeMutablePointer<Float>) throws {
        guard let comm = group.comm else { return }
        try group.call("MPI_Allgatherv") {
            MPI_Allgatherv(gpt_MPI_IN_PLACE(), 0, gpt_MPI_DATATYPE_NULL(),
                           buffer, sendCounts, sendOffsets, gpt_MPI_FLOAT(), comm)
        }
    }

    /// The sum over ranks (times `scale`), identical on every rank.
    public func allReduce(_ buffer: UnsafeMutablePointer<Float>, scale: Float = 1) throws {
        try reduceScatter(buffer, scale: scale)
        try allGather(buffer)
    }

    /// Collects every rank's shard, each given as its own `shard.count` floats at `local`, into `whole` (`count`
    /// floats) on rank `root`; `whole` is not touched elsewhere and may be nil there. How the rank that writes a
    /// checkpoint collects optimizer state that ZeRO-1 spread over the ranks.
    public func gather(shard local: UnsafePointer<Float>, into whole: UnsafeMutablePointer<Float>?, root: Int = 0) throws {
        guard let comm = group.comm else {
            if let whole { whole.update(from: local, count: count) }
            return
        }
        let mine = Int32(myShard.count)
        if group.rank == root {
            guard let whole else { throw CollectiveError.size("gather: the root rank needs a buffer for the whole") }
            try group.call("MPI_Gatherv") {
                MPI_Gatherv(local, mine, gpt_MPI_FLOAT(), whole, sendCounts, sendOffsets, gpt_MPI_FLOAT(), Int32(root), comm)
            }
        } else {
            try group.call("MPI_Gatherv") {
                MPI_Gatherv(local, mine, gpt_MPI_FLOAT(), nil, nil, nil, gpt_MPI_FLOAT(), Int32(root), comm)
            }
        }
    }

    /// The inverse of `gather`: rank `root`'s `whole` is cut into shards, and each rank receives its own at `local`.
    public func scatter(_ whole: UnsafePointer<Float>?, intoShard local: UnsafeMutablePointer<Float>, root: Int = 0) throws {
        guard let comm = group.comm else {
            if let whole { local.update(from: whole, count: count) }
            return
        }
        let mine = Int32(myShard.count)
        if group.rank == root {
            guard let whole else { throw CollectiveError.size("scatter: the root rank needs the whole buffer") }
            try group.call("MPI_Scatterv") {
                MPI_Scatterv(whole, sendCounts, sendOffsets, gpt_MPI_FLOAT(), local, mine, gpt_MPI_FLOAT(), Int32(root), comm)
            }
        } else {
            try group.call("MPI_Scatterv") {
                MPI_Scatterv(nil, nil, nil, gpt_MPI_FLOAT(), local, mine, gpt_MPI_FLOAT(), Int32(root), comm)
            }
        }
    }

    /// Rank `root`'s whole buffer on every rank.
    public func broadcast(_ buffer: UnsafeMutablePointer<Float>, root: Int = 0) throws {
        try group.broadcast(UnsafeMutableRawBufferPointer(start: buffer, count: count * 4), root: root)
    }
}
