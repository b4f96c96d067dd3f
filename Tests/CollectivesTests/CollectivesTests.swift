import Collectives
import Foundation
import XCTest

/// The rank side of the tests: these run inside `mpirun`, as every rank of a job that `CollectivesTests` starts
/// with this very test binary. Outside `mpirun` they skip.
final class CollectivesRankBody: XCTestCase {
    private func group() throws -> ProcessGroup {
        guard let launch = Launch.fromEnvironment(), launch.worldSize > 1 else {
            throw XCTSkip("runs as a rank of an mpirun job that CollectivesTests starts")
        }
        return try ProcessGroup.fromLaunch(launch)
    }

    /// A value that differs per rank and element and whose sums round differently in different orders.
    static func value(rank: Int, index: Int) -> Float {
        Float(rank + 1) * 0.1 + Float(index % 97) * 1e-3 + Float(rank) * 3.3e-5 * Float(index % 13)
    }

    func testReductions() throws {
        let group = try group()
        defer { group.finalize() }
        for count in [0, 5, 37, 1000, 4099] {
            let reducer = try FloatReducer(group: group, count: count)
            XCTAssertEqual(reducer.shards.map(\.count).reduce(0, +), count)
            let buffer = UnsafeMutablePointer<Float>.allocate(capacity: max(count, 1))
            defer { buffer.deallocate() }
            func fill() { for i in 0..<count { buffer[i] = Self.value(rank: group.rank, index: i) } }
            // The sum in rank order, as every rank must get it, bit for bit.
            func expected(_ i: Int, scale: Float = 1) -> Float {
                var s = Self.value(rank: 0, index: i)
                for r in 1..<group.size { s += Self.value(rank: r, index: i) }
                return scale == 1 ? s : s * scale
            }

            fill()
            try reducer.allReduce(buffer, scale: 0.25)
            for i in 0..<count where buffer[i].bitPattern != expected(i, scale: 0.25).bitPattern {
                XCTFail("rank \(group.rank), count \(count): allReduce[\(i)] = \(buffer[i]), expected \(expected(i, scale: 0.25))")
                break
            }

            fill()
            try reducer.reduceScatter(buffer)
            for i in 0..<count {
                let want = reducer.myShard.contains(i) ? expected(i) : Self.value(rank: group.rank, index: i)
                if buffer[i].bitPattern != want.bitPattern { XCTFail("reduceScatter[\(i)] on rank \(group.rank)"); break }
            }

            // Each rank's shard holds rank-specific values; gather, scatter and allGather must put them in place.
            for i in 0..<count { buffer[i] = -1 }
            for i in reducer.myShard { buffer[i] = Float(group.rank * 100_000 + i) }
            let whole = UnsafeMutablePointer<Float>.allocate(capacity: max(count, 1))
            defer { whole.deallocate() }
            whole.initialize(repeating: -2, count: max(count, 1))
            try reducer.gather(shard: buffer + reducer.myShard.lowerBound, into: group.rank == 0 ? whole : nil, root: 0)
            if group.rank == 0 {
                for (r, shard) in reducer.shards.enumerated() {
                    for i in shard where whole[i] != Float(r * 100_000 + i) { XCTFail("gather[\(i)]"); break }
                }
            }
            let local = UnsafeMutablePointer<Float>.allocate(capacity: max(reducer.myShard.count, 1))
            defer { local.deallocate() }
            try reducer.scatter(group.rank == 0 ? whole : nil, intoShard: local, root: 0)
            for (j, i) in reducer.myShard.enumerated() where local[j] != Float(group.rank * 100_000 + i) {
                XCTFail("scatter[\(i)] on rank \(group.rank)"); break
            }
            for i in 0..<count where !reducer.myShard.contains(i) { buffer[i] = -1 }
            try reducer.allGather(buffer)
            for (r, shard) in reducer.shards.enumerated() {
                for i in shard where buffer[i] != Float(r * 100_000 + i) { XCTFail("allGather[\(i)] on rank \(group.rank)"); break }
            }

            for i in 0..<count { buffer[i] = group.rank == 1 ? Float(i) : 0 }
            try reducer.broadcast(buffer, root: 1)
            for i in 0..<count where buffer[i] != Float(i) { XCTFail("broadcast[\(i)] on rank \(group.rank)"); break }
        }

        XCTAssertEqual(try group.sum(Double(group.rank + 1)), Double(group.size * (group.size + 1) / 2))
        XCTAssertEqual(try group.maximum(Double(group.rank)), Double(group.size - 1))
        let parts: [Double] = (0..<group.size).map { (r: Int) -> Double in
            let x = Double(r)
            return 0.1 * (x + 1) + 1e-17 * x
        }
        XCTAssertEqual(try group.orderedSum(parts[group.rank]).bitPattern, parts.dropFirst().reduce(parts[0], +).bitPattern)
        XCTAssertEqual(try group.broadcast(group.rank == 0 ? Array("from rank 0".utf8) : []), Array("from rank 0".utf8))
        XCTAssertEqual(try group.broadcast(group.rank * 7 + 1, root: group.size - 1), (group.size - 1) * 7 + 1)
        XCTAssertGreaterThan(group.communicationSeconds, 0)
        try group.barrier()
        print("rank \(group.rank) of \(group.size): collectives ok")
    }

    /// One rank fails and ends the job; the others are inside a collective that would otherwise wait forever.
    func testAbortEndsEveryRank() throws {
        let group = try group()
        if group.rank == group.size - 1 {
            FileHandle.standardError.write("rank \(group.rank): failing on purpose\n".data(using: .utf8)!)
            group.abort(code: 3)
        }
        try group.barrier()
        XCTFail("rank \(group.rank) left a barrier that a failed rank never reached")
    }
}

/// Starts real `mpirun` jobs of this test binary on localhost.
final class CollectivesTests: XCTestCase {
    struct Outcome { var status: Int32; var output: String; var seconds: Double }

    static var mpirun: String? {
        ["/usr/bin/mpirun", "/usr/local/bin/mpirun"].first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    func runRanks(_ k: Int, test: String, timeout: Double = 60) throws -> Outcome {
        guard let mpirun = Self.mpirun else { throw XCTSkip("Open MPI's mpirun is not installed (scripts/setup.sh installs it)") }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: mpirun)
        var arguments = ["-np", String(k), "--oversubscribe", "--bind-to", "none"]
        if getuid() == 0 { arguments.insert("--allow-run-as-root", at: 0) }
        // This binary, running just the named test as each rank.
        arguments += [CommandLine.arguments[0], "CollectivesTests.CollectivesRankBody/\(test)"]
        process.arguments = arguments
        var environment = ProcessInfo.processInfo.environment
        environment["OMPI_MCA_btl_vader_single_copy_mechanism"] = "none"  // containers often forbid CMA
        process.environment = environment
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        let start = Date()
        try process.run()
        let timer = DispatchWorkItem { if process.isRunning { process.terminate() } }
        DispatchQueue.global().asyncAfter(deadline: .now() + timeout, execute: timer)
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        timer.cancel()
        return Outcome(status: process.terminationStatus, output: String(decoding: data, as: UTF8.self),
                       seconds: Date().timeIntervalSince(start))
    }

    func testCollectivesOnTwoAndThreeRanks() throws {
        for k in [2, 3] {
            let outcome = try runRanks(k, test: "testReductions")
            XCTAssertEqual(outcome.status, 0, outcome.output)
            for r in 0..<k { XCTAssertTrue(outcome.output.contains("rank \(r) of \(k): collectives ok"), outcome.output) }
        }
    }

    func testOneFailingRankEndsTheJob() throws {
        let outcome = try runRanks(3, test: "testAbortEndsEveryRank", timeout: 60)
        XCTAssertEqual(outcome.status, 3, outcome.output)
        XCTAssertTrue(outcome.output.contains("rank 2: failing on purpose"), outcome.output)
        XCTAssertFalse(outcome.output.contains("left a barrier"), outcome.output)
        XCTAssertLessThan(outcome.seconds, 55, "the job hung until the timeout")
    }

    func testWithoutMPIRunAGroupIsOneProcess() throws {
        XCTAssertNil(Launch.fromEnvironment([:]))
        XCTAssertEqual(Launch.fromEnvironment(["OMPI_COMM_WORLD_SIZE": "4", "OMPI_COMM_WORLD_RANK": "2",
                                               "OMPI_COMM_WORLD_LOCAL_SIZE": "2", "OMPI_COMM_WORLD_LOCAL_RANK": "0"]),
                       Launch(worldSize: 4, rank: 2, localSize: 2, localRank: 0))
        XCTAssertNil(Launch.fromEnvironment(["OMPI_COMM_WORLD_SIZE": "2", "OMPI_COMM_WORLD_RANK": "2"]))
        let group = ProcessGroup.single()
        XCTAssertFalse(group.isDistributed)
        let reducer = try FloatReducer(group: group, count: 10)
        var values: [Float] = (0..<10).map(Float.init)
        try values.withUnsafeMutableBufferPointer { try reducer.allReduce($0.baseAddress!, scale: 0.5) }
        XCTAssertEqual(values, (0..<10).map { Float($0) * 0.5 })
        XCTAssertEqual(try group.sum(2.5), 2.5)
    }
}
