import Foundation
import RunReports
import TensorBoard
import XCTest

/// Reads event files with TensorBoard's own reader (the `tensorboard` Python package, which checks both CRCs of
/// every record). Skipped where `python3 -c "import tensorboard"` fails; scripts/test.sh installs the package.
enum PythonTensorBoard {
    static let script = """
    import json, sys
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    acc = EventAccumulator(sys.argv[1], size_guidance={"scalars": 0})
    acc.Reload()
    print(json.dumps({t: [[e.step, e.value, e.wall_time] for e in acc.Scalars(t)] for t in acc.Tags()["scalars"]}))
    """

    static func run(_ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3"] + arguments
        let base = (NSTemporaryDirectory() as NSString).appendingPathComponent("py-\(UUID().uuidString)")
        for suffix in [".out", ".err"] { _ = FileManager.default.createFile(atPath: base + suffix, contents: nil) }
        defer { for suffix in [".out", ".err"] { try? FileManager.default.removeItem(atPath: base + suffix) } }
        process.standardOutput = FileHandle(forWritingAtPath: base + ".out")
        process.standardError = FileHandle(forWritingAtPath: base + ".err")
        try process.run()
        process.waitUntilExit()
        let read = { (suffix: String) in (try? String(contentsOfFile: base + suffix, encoding: .utf8)) ?? "" }
        return (process.terminationStatus, read(".out"), read(".err"))
    }

    static func skipUnlessInstalled() throws {
        let probe = try? run(["-c", "import tensorboard"])
        guard let probe, probe.status == 0 else {
            throw XCTSkip("the tensorboard Python package is not installed (python3 -c \"import tensorboard\" failed); "
                          + "`bash scripts/test.sh` or `python3 -m pip install tensorboard` installs it")
        }
    }

    /// tag → [(step, value, wall time)] as TensorBoard reads `directory`.
    static func scalars(in directory: String) throws -> [String: [[Double]]] {
        let result = try run(["-c", script, directory])
        guard result.status == 0 else {
            XCTFail("the TensorBoard reader failed (\(result.status)): \(result.stderr)")
            return [:]
        }
        return try JSONDecoder().decode([String: [[Double]]].self, from: Data(result.stdout.utf8))
    }
}

final class TensorBoardReaderTests: XCTestCase {
    var directory = ""

    override func setUpWithError() throws {
        try PythonTensorBoard.skipUnlessInstalled()
        directory = (NSTemporaryDirectory() as NSString).appendingPathComponent("tbread-\(UUID().uuidString)")
    }

    override func tearDownWithError() throws { if !directory.isEmpty { try? FileManager.default.removeItem(atPath: directory) } }

    func testTensorBoardReadsWhatTheWriterWrote() throws {
        let writer = try EventWriter(directory: directory, flushInterval: 1000)
        var expected: [String: [[Double]]] = ["loss/train": [], "train/lr": []]
        for step in 1...300 {
            let loss = Float(10) / Float(step).squareRoot(), lr = 6e-4 * Double(step) / 300
            let wallTime = 1_764_000_000 + Double(step) * 0.25
            try writer.add([.init(tag: "loss/train", value: loss), .init(tag: "train/lr", value: Float(lr))],
                           step: step, wallTime: wallTime)
            expected["loss/train"]!.append([Double(step), Double(loss), wallTime])
            expected["train/lr"]!.append([Double(step), Double(Float(lr)), wallTime])
        }
        try writer.add(scalar: 1e30, tag: "big", step: 1 << 33, wallTime: 5)
        expected["big"] = [[Double(1 << 33), Double(Float(1e30)), 5]]
        try writer.close()
        // Values are float32 in the file: TensorBoard must give back exactly the float32 values written.
        XCTAssertEqual(try PythonTensorBoard.scalars(in: directory), expected)
    }

    func testConvertedMetricsReadBack() throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let metrics = """
        {"step":1,"train_loss":4.25,"lr":0.0001,"grad_norm":2.5,"tokens_per_sec":1200,"mfu":0.25}
        {"step":2,"train_loss":null,"lr":0.0002,"grad_norm":3,"tokens_per_sec":1300,"mfu":null}
        {"step":2,"event":"spike","loss":9.5,"action":"rollback"}
        {"step":2,"val_loss":4.5}

        """
        try metrics.write(toFile: directory + "/metrics.jsonl", atomically: true, encoding: .utf8)
        let result = try TensorBoardExport.convert(runDirectory: directory)
        XCTAssertEqual(result.events, 4)
        let read = try PythonTensorBoard.scalars(in: directory + "/tb")
        let steps = read.mapValues { $0.map { [$0[0], $0[1]] } }
        XCTAssertEqual(steps, [
            "loss/train": [[1, 4.25]], "loss/val": [[2, 4.5]], "events/spike": [[2, 9.5]],
            "train/lr": [[1, Double(Float(0.0001))], [2, Double(Float(0.0002))]],
            "train/grad_norm": [[1, 2.5], [2, 3]], "train/tokens_per_sec": [[1, 1200], [2, 1300]],
            "train/mfu": [[1, 0.25]],
        ])
    }
}
