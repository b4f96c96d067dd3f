import Checkpoint
import Foundation
import TestFixtures
import Runtime
import Trainer
import XCTest

/// A checkpoint that cannot be written (disk full, file-size limit) ends the run with a clear error and exit
/// status 1, never a signal, with and without --resume; the checkpoints already written stay intact and loadable,
/// no temporary file is left, and the run continues once there is room.
final class FullDiskTests: XCTestCase {
    var mounted: [String] = []

    override func tearDown() {
        for point in mounted { _ = try? run("/bin/umount", [point]) }
        mounted = []
    }

    func setUpRun(_ name: String) throws -> (dir: String, recipe: String) {
        let dir = try Fixtures.directory(name)
        var o = Fixtures.Options.checkpointed(steps: 6, every: 2)
        o.evalInterval = 6
        return (dir, try Fixtures.recipe(in: dir, o))
    }

    /// Bytes of a checkpoint of the fixture (`size`) and the least the writer checks for before starting (`least`:
    /// tensors, moments, recipe and tokenizer).
    func checkpointSizes(recipe: String, dir: String) throws -> (size: Int, least: Int) {
        let out = try Tool.run("gpt-train", [recipe, "--out", "\(dir)/probe", "--steps", "2", "--no-mfu"])
        XCTAssertEqual(out.status, 0, out.stderr)
        let path = "\(dir)/probe/checkpoints/\(Trainer.checkpointName(step: 2))"
        let (reader, saved) = try CheckpointReader.openValidated(path)
        let parameters = CheckpointExpectation(saved).tensors.reduce(0) { $0 + $1.shape.reduce(1, *) }
        let size = try FileManager.default.attributesOfItem(atPath: path)[.size] as! Int
        return (size, 12 * parameters + reader.recipe.utf8.count + reader.tokenizer.utf8.count)
    }

    /// Makes the free space of the file system holding `directory` exactly `free` bytes (to the block) with a
    /// filler file.
    func leave(free: Int, in directory: String) throws {
        let filler = "\(directory)/filler"
        try? FileManager.default.removeItem(atPath: filler)
        let now = try freeBytes(directory)
        XCTAssertGreaterThan(now, free, "the file system is too small for the test")
        try Data(count: now - free).write(to: URL(fileURLWithPath: filler))
    }

    func freeBytes(_ directory: String) throws -> Int {
        var info = statvfs()
        guard statvfs(directory, &info) == 0 else { throw CocoaError(.fileReadUnknown) }
        return Int(info.f_bavail) * Int(info.f_frsize)
    }

    func assertCleanFailure(_ out: Tool.Output, step: Int, checkpoints: String, kept: [Int], line: UInt = #line) {
        XCTAssertEqual(out.status, 1, "exit status (a signal would show as its number): \(out.stderr)", line: line)
        XCTAssertTrue(out.stderr.contains("\(checkpoints)/\(Trainer.checkpointName(step: step)): could not be written"),
                      out.stderr, line: line)
        XCTAssertTrue(out.stderr.contains("Fix: free space"), out.stderr, line: line)
        XCTAssertFalse(out.stderr.contains("Program crashed") || out.stderr.contains("Signal"), out.stderr, line: line)
        XCTAssertEqual(Trainer.checkpoints(in: checkpoints).map(\.step), kept, line: line)
        let names = (try? FileManager.default.contentsOfDirectory(atPath: checkpoints)) ?? []
        XCTAssertEqual(names.filter { $0.contains(".tmp-") }, [], "no temporary file is left", line: line)
        for step in kept {
            XCTAssertNoThrow(try CheckpointReader.openValidated("\(checkpoints)/\(Trainer.checkpointName(step: step))"), line: line)
        }
    }

    /// A real full disk: a tmpfs (mounting needs root; without it the test says so and skips, and
    /// `testAFileSizeLimitIsAnErrorNotASignal` still covers the write failure).
    func testAFullDiskIsAnErrorNotASignalAndTheRunContinuesOnceThereIsRoom() throws {
        let (dir, recipe) = try setUpRun("fulldisk")
        let (size, least) = try checkpointSizes(recipe: recipe, dir: dir)
        XCTAssertLessThan(least, size)
        let disk = "\(dir)/disk"
        try FileManager.default.createDirectory(atPath: disk, withIntermediateDirectories: true)
        let mount = try run("/bin/mount", ["-t", "tmpfs", "-o", "size=\(4 * size + (1 << 20))", "tmpfs", disk])
        guard mount.status == 0 else {
            throw XCTSkip("cannot mount a tmpfs here (\(mount.stderr.trimmingCharacters(in: .whitespacesAndNewlines))); "
                          + "the file-size-limit test covers the failing write")
        }
        mounted.append(disk)
        let out = "\(disk)/run", checkpoints = "\(disk)/run/checkpoints"

        // 1. A fresh run with room for two checkpoints: the third (step 6) is refused before HDF5 starts.
        try leave(free: 2 * size + 64 * 1024 + least / 2, in: disk)
        let fresh = try Tool.run("gpt-train", [recipe, "--out", out, "--threads", "2", "--no-mfu"])
        assertCleanFailure(fresh, step: 6, checkpoints: checkpoints, kept: [4, 2])
        XCTAssertTrue(fresh.stderr.contains("it needs at least \(least) bytes"), fresh.stderr)

        // 2. Resumed with more room than that check asks but less than the file takes: the disk fills up inside
        //    HDF5's writes and the final flush fails (this was SIGSEGV in HDF5's exit clean-up).
        try leave(free: (least + size) / 2, in: disk)
        let resumed = try Tool.run("gpt-train", [recipe, "--out", out, "--resume", "--threads", "2", "--no-mfu"])
        assertCleanFailure(resumed, step: 6, checkpoints: checkpoints, kept: [4, 2])
        XCTAssertTrue(resumed.stderr.contains("resumed from \(checkpoints)/\(Trainer.checkpointName(step: 4))"), resumed.stderr)
        XCTAssertTrue(resumed.stderr.contains("failed (No space left on device)"), resumed.stderr)

        // 2b. The same failure inside this process, through the library: an error, and HDF5 still works after it.
        let (reader, saved) = try CheckpointReader.openValidated("\(checkpoints)/\(Trainer.checkpointName(step: 4))")
        let tensors = CheckpointExpectation(saved).tensors
        let count = tensors.reduce(0) { $0 + $1.shape.reduce(1, *) }
        var p = [Float](repeating: 0, count: count), m = p, v = p
        try p.withUnsafeMutableBufferPointer { pp in try m.withUnsafeMutableBufferPointer { mm in
            try v.withUnsafeMutableBufferPointer { vv in
                try reader.read(tensors: tensors, parameters: pp.baseAddress!, m: mm.baseAddress!, v: vv.baseAddress!)
            } } }
        func write(_ path: String) throws {
            try CheckpointWriter.write(to: path, tensors: tensors, parameters: p, m: m, v: v, state: reader.state,
                                       recipe: reader.recipe, tokenizer: reader.tokenizer)
        }
        try leave(free: (least + size) / 2, in: disk)
        XCTAssertThrowsError(try write("\(disk)/in-process.h5")) { error in
            XCTAssertTrue("\(error)".contains("could not be written"), "\(error)")
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: disk).sorted(), ["filler", "run"])
        try write("\(dir)/in-process.h5")
        XCTAssertNoThrow(try CheckpointReader.openValidated("\(dir)/in-process.h5"))

        // 3. With room again, --resume finishes the run.
        try FileManager.default.removeItem(atPath: "\(disk)/filler")
        let finished = try Tool.run("gpt-train", [recipe, "--out", out, "--resume", "--threads", "2", "--no-mfu"])
        XCTAssertEqual(finished.status, 0, finished.stderr)
        XCTAssertNoThrow(try CheckpointReader.openValidated("\(checkpoints)/\(Trainer.checkpointName(step: 6))"))
    }

    /// The same write failure without mounting anything: a file-size limit (RLIMIT_FSIZE, SIGXFSZ ignored) below a
    /// checkpoint's size makes HDF5's writes fail with EFBIG, after the free-space check has passed.
    func testAFileSizeLimitIsAnErrorNotASignal() throws {
        let (dir, recipe) = try setUpRun("fsize")
        let (_, least) = try checkpointSizes(recipe: recipe, dir: dir)
        let gptTrain = Tool.path("gpt-train")
        let out = try run("/bin/sh", ["-c", "trap '' XFSZ; exec /usr/bin/prlimit --fsize=\(least / 2) \"$@\"", "sh",
                                      gptTrain, recipe, "--out", "\(dir)/run", "--threads", "2", "--no-mfu"])
        assertCleanFailure(out, step: 2, checkpoints: "\(dir)/run/checkpoints", kept: [])
        XCTAssertTrue(out.stderr.contains("(File too large)"), out.stderr)
    }

    /// Runs a system command to completion.
    func run(_ executable: String, _ arguments: [String]) throws -> Tool.Output {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let base = (NSTemporaryDirectory() as NSString).appendingPathComponent("sys-\(UUID().uuidString)")
        for suffix in [".out", ".err"] { FileManager.default.createFile(atPath: base + suffix, contents: nil) }
        process.standardOutput = FileHandle(forWritingAtPath: base + ".out")
        process.standardError = FileHandle(forWritingAtPath: base + ".err")
        try process.run()
        process.waitUntilExit()
        let read = { (suffix: String) in (try? String(contentsOfFile: base + suffix, encoding: .utf8)) ?? "" }
        defer { for suffix in [".out", ".err"] { try? FileManager.default.removeItem(atPath: base + suffix) } }
        return Tool.Output(status: process.terminationReason == .uncaughtSignal ? 128 + process.terminationStatus
                                                                                : process.terminationStatus,
                           stdout: read(".out"), stderr: read(".err"))
    }
}
