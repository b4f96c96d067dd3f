import Checkpoint
import Foundation
import TestFixtures
import Runtime
import Trainer
import XCTest

/// `mpirun -np K gpt-train`: real Open MPI jobs on localhost, checked against one process and against themselves.
///
/// Tolerance. A K-rank step adds the same per-micro-batch gradients as one process, in another order: one
/// process accumulates every micro-batch into one buffer (sgemm with β = 1), K ranks each accumulate theirs and
/// then add the K partial sums. Each float32 addition rounds at 2⁻²⁴ ≈ 6e-8 relative; the tiny model's 30 steps of
/// AdamW carry such differences forward without amplifying them much (measured: losses agree to every printed
/// digit, weights to about 1e-7). The tests allow 2e-5 on losses (~3 nats) and 1e-4 on any weight: hundreds of
/// times the measured difference, and far below what a wrong batch split, a missed micro-batch or a stale shard
/// would give (those change losses in the second or third decimal).
final class DistributedTrainingTests: XCTestCase {
    static let mpirun = ["/usr/bin/mpirun", "/usr/local/bin/mpirun"].first { FileManager.default.isExecutableFile(atPath: $0) }

    func options(devices: Int, steps: Int = 30, zeroStage: Int = 0) -> Fixtures.Options {
        var o = Fixtures.Options()
        o.steps = steps
        o.devices = devices
        o.microBatch = 2
        o.gradAccum = 2
        o.zeroStage = zeroStage
        o.dropout = 0.1
        o.evalInterval = 10
        o.evalIters = 3
        o.checkpointInterval = 10
        o.logInterval = 5
        return o
    }

    /// Starts `mpirun -np ranks gpt-train arguments`.
    func startJob(ranks: Int, _ arguments: [String]) throws -> Process {
        guard let mpirun = Self.mpirun else { throw XCTSkip("Open MPI's mpirun is not installed (scripts/setup.sh installs it)") }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: mpirun)
        var args = ["-np", String(ranks), "--oversubscribe", "--bind-to", "none"]
        if getuid() == 0 { args.insert("--allow-run-as-root", at: 0) }
        process.arguments = args + [Tool.path("gpt-train")] + arguments + ["--threads", "1", "--no-mfu"]
        var environment = ProcessInfo.processInfo.environment
        environment["OMPI_MCA_btl_vader_single_copy_mechanism"] = "none"
        process.environment = environment
        let base = (NSTemporaryDirectory() as NSString).appendingPathComponent("mpi-\(UUID().uuidString)")
        FileManager.default.createFile(atPath: base + ".log", contents: nil)
        process.standardOutput = FileHandle(forWritingAtPath: base + ".log")
        process.standardError = process.standardOutput
        logs[ObjectIdentifier(process)] = base + ".log"
        try process.run()
        return process
    }

    var logs: [ObjectIdentifier: String] = [:]

    func log(_ process: Process) -> String {
        let path = logs[ObjectIdentifier(process)]!
        defer { try? FileManager.default.removeItem(atPath: path) }
        return (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
    }

    func runJob(ranks: Int, _ arguments: [String]) throws -> (status: Int32, output: String) {
        let process = try startJob(ranks: ranks, arguments)
        process.waitUntilExit()
        return (process.terminationStatus, log(process))
    }

    /// Weights, first and second moments of a checkpoint, as flat arrays.
    func state(_ path: String) throws -> [[Float]] {
        let reader = try CheckpointReader(path: path)
        var offset = 0
        let list = try reader.modelTensors().map { t -> CheckpointTensor in
            defer { offset += t.shape.reduce(1, *) }
            return CheckpointTensor(name: t.name, shape: t.shape, offset: offset)
        }
        var p = [Float](repeating: 0, count: offset), m = p, v = p
        try p.withUnsafeMutableBufferPointer { pp in try m.withUnsafeMutableBufferPointer { mm in try v.withUnsafeMutableBufferPointer { vv in
            try reader.read(tensors: list, parameters: pp.baseAddress!, m: mm.baseAddress!, v: vv.baseAddress!)
        } } }
        return [p, m, v]
    }

    func final(_ run: String, step: Int) -> String { "\(run)/checkpoints/\(Trainer.checkpointName(step: step))" }

    func assertClose(_ a: [[String: Double]], _ b: [[String: Double]], tolerance: Double, _ what: String) {
        XCTAssertEqual(a.count, b.count, what)
        for (x, y) in zip(a, b) {
            XCTAssertEqual(x["step"], y["step"], what)
            for key in ["train_loss", "val_loss"] where x[key] != nil {
                XCTAssertEqual(x[key]!, y[key] ?? .nan, accuracy: tolerance, "\(what): \(key) at step \(x["step"]!)")
            }
        }
    }

    func maxDifference(_ a: [Float], _ b: [Float]) -> Float { zip(a, b).map { abs($0 - $1) }.max() ?? 0 }

    func testRanksMatchOneProcessAndRepeatBitForBit() throws {
        for k in [2, 3] {
            let dir = try Fixtures.directory("dp-\(k)")
            let recipe = try Fixtures.recipe(in: dir, options(devices: k))
            let single = try Tool.run("gpt-train", [recipe, "--out", "\(dir)/single", "--threads", "1", "--no-mfu"])
            XCTAssertEqual(single.status, 0, single.stderr)
            for run in ["a", "b"] {
                let job = try runJob(ranks: k, [recipe, "--out", "\(dir)/\(run)"])
                XCTAssertEqual(job.status, 0, job.output)
                if run == "a" {
                    XCTAssertEqual(job.output.components(separatedBy: "done: 30 steps").count - 1, 1,
                                   "rank 0 alone prints: \(job.output)")
                }
            }
            // Repeats: identical bits, every logged number and every weight and moment.
            XCTAssertEqual(try Fixtures.metrics(runDirectory: "\(dir)/a"), try Fixtures.metrics(runDirectory: "\(dir)/b"))
            XCTAssertEqual(try state(final("\(dir)/a", step: 30)), try state(final("\(dir)/b", step: 30)))
            // Against one process computing every device's micro-batches itself.
            assertClose(try Fixtures.metrics(runDirectory: "\(dir)/single"), try Fixtures.metrics(runDirectory: "\(dir)/a"),
                        tolerance: 2e-5, "\(k) ranks against one process")
            let one = try state(final("\(dir)/single", step: 30)), many = try state(final("\(dir)/a", step: 30))
            XCTAssertLessThan(maxDifference(one[0], many[0]), 1e-4, "\(k) ranks: weights")
            XCTAssertGreaterThan(maxDifference(one[0], try state(final("\(dir)/single", step: 10))[0]), 1e-3,
                                 "the comparison is not vacuous: training moved the weights")
            let lines = try String(contentsOfFile: "\(dir)/a/metrics.jsonl", encoding: .utf8)
            XCTAssertTrue(lines.contains("\"comm_seconds\":"), "metrics gain the time spent in collectives")
        }
    }

    /// ZeRO-1 (sharded moments: reduce-scatter, shard update, all-gather) trains the same model as plain data
    /// parallelism, and its checkpoint holds the whole moments, as one process writes them.
    func testZeroStageOneMatchesPlainDataParallelism() throws {
        let dir = try Fixtures.directory("dp-zero")
        let plain = try Fixtures.recipe(in: dir, name: "plain.toml", options(devices: 3))
        let zero = try Fixtures.recipe(in: dir, name: "zero.toml", options(devices: 3, zeroStage: 1))
        let a = try runJob(ranks: 3, [plain, "--out", "\(dir)/plain"])
        XCTAssertEqual(a.status, 0, a.output)
        let b = try runJob(ranks: 3, [zero, "--out", "\(dir)/zero"])
        XCTAssertEqual(b.status, 0, b.output)
        assertClose(try Fixtures.metrics(runDirectory: "\(dir)/plain"), try Fixtures.metrics(runDirectory: "\(dir)/zero"),
                    tolerance: 2e-5, "ZeRO-1 against plain data parallelism")
        let x = try state(final("\(dir)/plain", step: 30)), y = try state(final("\(dir)/zero", step: 30))
        for (i, name) in ["weights", "first moments", "second moments"].enumerated() {
            XCTAssertLessThan(maxDifference(x[i], y[i]), 1e-4, name)
        }
        XCTAssertGreaterThan(y[2].filter { $0 > 0 }.count, y[2].count * 9 / 10, "every rank's shard of v was gathered")
        // Health signals: per-tensor gradient norms come from every rank's shard under ZeRO-1.
        func health(_ run: String) throws -> [[String: Double]] {
            try String(contentsOfFile: "\(dir)/\(run)/metrics.jsonl", encoding: .utf8).split(separator: "\n").compactMap { line in
                let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
                return (object["health"] as? [String: Any])?["grad_norm"] as? [String: Double]
            }
        }
        let (plainHealth, zeroHealth) = (try health("plain"), try health("zero"))
        XCTAssertFalse(plainHealth.isEmpty, "health lines are written")
        XCTAssertEqual(plainHealth.count, zeroHealth.count)
        for (p, z) in zip(plainHealth, zeroHealth) {
            XCTAssertEqual(Set(p.keys), Set(z.keys))
            for (name, norm) in p { XCTAssertEqual(norm, z[name]!, accuracy: 1e-5 * max(1, norm), name) }
        }
    }

    func testRanksMustMatchTheRecipesDevices() throws {
        let dir = try Fixtures.directory("dp-mismatch")
        let recipe = try Fixtures.recipe(in: dir, options(devices: 2))
        let job = try runJob(ranks: 3, [recipe, "--out", "\(dir)/run"])
        XCTAssertEqual(job.status, 1, job.output)
        XCTAssertTrue(job.output.contains("training.devices: the recipe asks for 2 data-parallel devices but mpirun started 3 ranks"),
                      job.output)
        XCTAssertTrue(job.output.contains("Fix: run `mpirun -np 2"), job.output)
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(dir)/run/checkpoints"))
    }

    /// kill -9 of one rank ends the job; every complete checkpoint stays; --resume on the same K finishes
    /// bit-identical to a job that was never interrupted; a K-rank checkpoint resumes in one process.
    func testKilledRankEndsTheJobAndResumeIsExact() throws {
        let steps = 400
        let dir = try Fixtures.directory("dp-kill")
        let recipe = try Fixtures.recipe(in: dir, options(devices: 2, steps: steps))
        let straight = try runJob(ranks: 2, [recipe, "--out", "\(dir)/straight"])
        XCTAssertEqual(straight.status, 0, straight.output)

        let job = try startJob(ranks: 2, [recipe, "--out", "\(dir)/run"])
        let checkpoints = "\(dir)/run/checkpoints"
        let deadline = Date().addingTimeInterval(120)
        while Trainer.checkpoints(in: checkpoints).count < 2, Date() < deadline, job.isRunning { usleep(2000) }
        let ranks = Self.children(of: job.processIdentifier)
        XCTAssertEqual(ranks.count, 2, "mpirun's children: \(ranks)")
        kill(ranks.last!, SIGKILL)
        job.waitUntilExit()
        let output = log(job)
        XCTAssertNotEqual(job.terminationStatus, 0, output)
        let kept = Trainer.checkpoints(in: checkpoints)
        XCTAssertFalse(kept.isEmpty)
        XCTAssertLessThan(kept[0].step, steps, "the job must be killed before it finishes")
        for checkpoint in kept { XCTAssertNoThrow(try CheckpointReader.openValidated(checkpoint.path), checkpoint.path) }

        let resumed = try runJob(ranks: 2, [recipe, "--out", "\(dir)/run", "--resume"])
        XCTAssertEqual(resumed.status, 0, resumed.output)
        XCTAssertTrue(resumed.output.contains("resumed from"), resumed.output)
        XCTAssertEqual(try state(final("\(dir)/straight", step: steps)), try state(final("\(dir)/run", step: steps)))
        XCTAssertEqual(try Fixtures.metrics(runDirectory: "\(dir)/straight"), try Fixtures.metrics(runDirectory: "\(dir)/run"))

        // The same batch on one process: devices 1, grad_accum 4, resumed from the 2-rank job's step-20 checkpoint.
        let other = try Fixtures.directory("dp-kill-one")
        let half = try runJob(ranks: 2, [recipe, "--out", "\(other)/run", "--steps", "20"])
        XCTAssertEqual(half.status, 0, half.output)
        var o = options(devices: 1, steps: steps)
        o.gradAccum = 4
        let single = try Fixtures.recipe(in: dir, name: "single.toml", o)
        let resumedAlone = try Tool.run("gpt-train", [single, "--out", "\(other)/run", "--resume", "--steps", "40",
                                                     "--threads", "1", "--no-mfu"])
        XCTAssertEqual(resumedAlone.status, 0, resumedAlone.stderr)
        XCTAssertTrue(resumedAlone.stderr.contains("resuming with another data-parallel layout, the same batch"), resumedAlone.stderr)
        let reference = try runJob(ranks: 2, [recipe, "--out", "\(other)/reference", "--steps", "40"])
        XCTAssertEqual(reference.status, 0, reference.output)
        let here = try state(final("\(other)/run", step: 40)), there = try state(final("\(other)/reference", step: 40))
        XCTAssertLessThan(maxDifference(here[0], there[0]), 1e-4, "resumed on one process")
    }

    /// The processes `pid` started (Linux: /proc/PID/task/PID/children).
    static func children(of pid: Int32) -> [Int32] {
        let text = (try? String(contentsOfFile: "/proc/\(pid)/task/\(pid)/children", encoding: .utf8)) ?? ""
        return text.split(separator: " ").compactMap { Int32($0) }.sorted()
    }
}
