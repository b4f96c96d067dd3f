import Foundation
import Metrics
import RunReports
import TensorBoard
import XCTest

final class RunMetricsTests: XCTestCase {
    func testTolerantReading() throws {
        let text = """
        {"step":1,"train_loss":10.5,"lr":0,"grad_norm":7.25,"tokens_per_sec":900,"mfu":null}
        not json
        {"train_loss":3}

        {"step":2,"train_loss":null,"lr":6e-05,"grad_norm":null,"tokens":2048,"health":{"logit_max":12.5}}
        {"step":2,"val_loss":9.75}
        {"step":3,"event":"spike","loss":55.5,"action":"skip"}
        {"step":4,"train_lo
        """
        let run = try RunMetrics(name: "r", text: text)
        XCTAssertEqual(run.skippedLines, [2, 3, 8])
        XCTAssertEqual(run.training, [
            .init(step: 1, trainLoss: 10.5, lr: 0, gradNorm: 7.25, tokens: nil),
            .init(step: 2, trainLoss: nil, lr: 6e-05, gradNorm: nil, tokens: 2048),
        ])
        XCTAssertEqual(run.validation, [.init(step: 2, loss: 9.75)])
        XCTAssertEqual(run.events, [.init(step: 3, kind: "spike", loss: 55.5, action: "skip")])
        XCTAssertEqual(run.lines[1].numbers.map(\.key), ["health/logit_max", "lr", "tokens"])
        XCTAssertEqual(MetricsScalars.scalars(of: run.lines[1]).map(\.tag), ["health/logit_max", "train/lr", "tokens"])
        XCTAssertEqual(MetricsScalars.scalars(of: run.lines[3]), [Event.Scalar(tag: "events/spike", value: 55.5)])
    }

    /// Issue 27: a metrics.jsonl with CRLF line endings (edited on Windows) reads as with LF; every line counts.
    func testCRLFLineEndings() throws {
        let text = "{\"step\":1,\"train_loss\":4.5,\"lr\":0.001,\"grad_norm\":2}\r\n{\"step\":1,\"val_loss\":4.75}\r\n"
            + "{\"step\":2,\"event\":\"spike\",\"loss\":50,\"action\":\"skip\"}\r\n"
        let run = try RunMetrics(name: "r", text: text)
        XCTAssertEqual(run.skippedLines, [])
        XCTAssertEqual(run.training, [.init(step: 1, trainLoss: 4.5, lr: 0.001, gradNorm: 2)])
        XCTAssertEqual(run.validation, [.init(step: 1, loss: 4.75)])
        XCTAssertEqual(run.events, [.init(step: 2, kind: "spike", loss: 50, action: "skip")])
    }

    /// Issue 27: a number beyond float32 (here a train_loss of 1e308) is refused naming the file, the line and the
    /// key, instead of becoming +inf in TensorBoard and NaN in the plot.
    func testNumberBeyondFloat32IsRefusedWithLineAndKey() throws {
        let text = "{\"step\":1,\"train_loss\":4.5,\"lr\":0.001,\"grad_norm\":2}\n"
            + "{\"step\":2,\"train_loss\":1e308,\"lr\":0.001,\"grad_norm\":2}\n"
        XCTAssertThrowsError(try RunMetrics(name: "r", text: text, path: "run/metrics.jsonl")) { error in
            XCTAssertTrue("\(error)".hasPrefix("run/metrics.jsonl:2: train_loss = 1e+308 is beyond float32's range"), "\(error)")
        }
        // At float32's largest finite value the line reads.
        let largest = "{\"step\":2,\"train_loss\":3.4028235e38,\"lr\":0.001,\"grad_norm\":2}\n"
        XCTAssertEqual(try RunMetrics(name: "r", text: largest).training.first?.trainLoss, Double(Float.greatestFiniteMagnitude))
    }

    func testMissingRunDirectoryNamesTheFile() {
        XCTAssertThrowsError(try RunMetrics.load(runDirectory: "/nonexistent/run")) { error in
            XCTAssertEqual("\(error)", "/nonexistent/run/metrics.jsonl: no such file or directory")
        }
    }
}

final class TensorBoardExportTests: XCTestCase {
    var directory = ""

    override func setUpWithError() throws {
        directory = (NSTemporaryDirectory() as NSString).appendingPathComponent("export-\(UUID().uuidString)")
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try """
        {"step":1,"train_loss":4.25,"lr":0.0001,"grad_norm":2.5,"tokens_per_sec":1200,"mfu":0.25,"wall_time":100.5}
        {"step":1,"val_loss":4.5}

        """.write(toFile: directory + "/metrics.jsonl", atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.modificationDate: Date(timeIntervalSince1970: 1_000_000)],
                                              ofItemAtPath: directory + "/metrics.jsonl")
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: directory) }

    func testConversionThenRefusalThenReplace() throws {
        let first = try TensorBoardExport.convert(runDirectory: directory)
        let events = try EventFile.read(path: first.path)
        XCTAssertEqual(events.dropFirst(), [
            Event(wallTime: 100.5, step: 1, scalars: [
                .init(tag: "train/grad_norm", value: 2.5), .init(tag: "train/lr", value: 0.0001),
                .init(tag: "train/mfu", value: 0.25), .init(tag: "train/tokens_per_sec", value: 1200),
                .init(tag: "loss/train", value: 4.25),
            ]),
            Event(wallTime: 1_000_000, step: 1, scalars: [.init(tag: "loss/val", value: 4.5)]),
        ])
        XCTAssertThrowsError(try TensorBoardExport.convert(runDirectory: directory)) { error in
            XCTAssertTrue("\(error)".contains("pass --replace"), "\(error)")
        }
        let second = try TensorBoardExport.convert(runDirectory: directory, replace: true)
        XCTAssertEqual(second.replaced, [first.path])
        XCTAssertEqual(EventFile.paths(in: directory + "/tb"), [second.path])
        XCTAssertEqual(try EventFile.read(path: second.path).dropFirst(), events.dropFirst())
    }

    /// The live mirror writes what the conversion writes, line for line.
    func testLiveLogMatchesConversion() throws {
        let log = try TensorBoardLog(runDirectory: directory + "/live", flushInterval: 0)
        for line in try String(contentsOfFile: directory + "/metrics.jsonl", encoding: .utf8).split(separator: "\n") {
            try log.record(line: String(line), wallTime: 7)
        }
        try log.close()
        let converted = try TensorBoardExport.convert(runDirectory: directory)
        let live = try EventFile.read(path: log.writer.path).dropFirst()
        let expected = try EventFile.read(path: converted.path).dropFirst().map { Event(wallTime: 7, step: $0.step, scalars: $0.scalars) }
        XCTAssertEqual(Array(live), expected)
    }
}
