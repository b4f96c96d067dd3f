import Foundation
import TestFixtures
import XCTest

/// gpt-train plot and gpt-train tensorboard on a real run.
final class MonitoringCommandTests: XCTestCase {
    func testPlotAndTensorBoardExportOfARealRun() throws {
        let dir = try Fixtures.directory("cli-monitoring")
        var o = Fixtures.Options()
        o.steps = 12
        o.logInterval = 2
        o.evalInterval = 6
        o.checkpointInterval = 12
        let recipe = try Fixtures.recipe(in: dir, o)
        XCTAssertEqual(try Tool.run("gpt-train", [recipe, "--out", "\(dir)/runs/a", "--threads", "1", "--no-mfu"]).status, 0)
        // A second "run": the same metrics with a spike event added, as spike detection will write them.
        try FileManager.default.createDirectory(atPath: "\(dir)/runs/b", withIntermediateDirectories: true)
        let metrics = try String(contentsOfFile: "\(dir)/runs/a/metrics.jsonl", encoding: .utf8)
        try (metrics + "{\"step\":8,\"event\":\"spike\",\"loss\":12.5,\"action\":\"skip\"}\n")
            .write(toFile: "\(dir)/runs/b/metrics.jsonl", atomically: true, encoding: .utf8)

        let plot = try Tool.run("gpt-train", ["plot", "runs/a", "runs/b", "-o", "curves.svg"], in: dir)
        XCTAssertEqual(plot.status, 0, plot.stderr)
        XCTAssertTrue(plot.stderr.contains("wrote curves.svg: a (to step 12), b (to step 12, 1 spike)"), plot.stderr)
        let svg = try String(contentsOfFile: "\(dir)/curves.svg", encoding: .utf8)
        XCTAssertEqual(svg.components(separatedBy: "<g class=\"panel\"").count - 1, 4)
        XCTAssertEqual(svg.components(separatedBy: "<path class=\"series\"").count - 1, 8)
        XCTAssertEqual(svg.components(separatedBy: "<line class=\"marker\"").count - 1, 4)

        // Against tokens: 12 steps of batch_size × seq_len tokens from runs/a/recipe.toml; runs/b has no recipe.
        let tokens = try Tool.run("gpt-train", ["plot", "runs/a", "--x", "tokens", "-o", "tokens.svg"], in: dir)
        XCTAssertEqual(tokens.status, 0, tokens.stderr)
        XCTAssertTrue(try String(contentsOfFile: "\(dir)/tokens.svg", encoding: .utf8).contains(">tokens</text>"))
        let noRecipe = try Tool.run("gpt-train", ["plot", "runs/b", "--x", "tokens", "-o", "t.svg"], in: dir)
        XCTAssertEqual(noRecipe.status, 1)
        XCTAssertTrue(noRecipe.stderr.contains("b: cannot plot against tokens"), noRecipe.stderr)

        let missing = try Tool.run("gpt-train", ["plot", "runs/none", "-o", "x.svg"], in: dir)
        XCTAssertEqual(missing.status, 1)
        XCTAssertTrue(missing.stderr.contains("runs/none/metrics.jsonl: no such file or directory"), missing.stderr)
        XCTAssertEqual(try Tool.run("gpt-train", ["plot", "runs/a", "-o", "x.png"], in: dir).status, 2)
        XCTAssertEqual(try Tool.run("gpt-train", ["plot", "runs/a", "--x", "time"], in: dir).status, 2)
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(dir)/x.svg"))

        // The run wrote its own event file as it trained; remove it to convert runs/a as a run made before that.
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: "\(dir)/runs/a/tb").count, 1)
        try FileManager.default.removeItem(atPath: "\(dir)/runs/a/tb")
        let export = try Tool.run("gpt-train", ["tensorboard", "runs/a"], in: dir)
        XCTAssertEqual(export.status, 0, export.stderr)
        XCTAssertTrue(export.stderr.contains("runs/a/tb/events.out.tfevents."), export.stderr)
        let again = try Tool.run("gpt-train", ["tensorboard", "runs/a"], in: dir)
        XCTAssertEqual(again.status, 1)
        XCTAssertTrue(again.stderr.contains("pass --replace"), again.stderr)
        XCTAssertEqual(try Tool.run("gpt-train", ["tensorboard", "runs/a", "--replace"], in: dir).status, 0)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: "\(dir)/runs/a/tb").count, 1)
    }
}

/// Issue 27's faults in reading metrics.jsonl, through the commands.
final class MetricsFileFaultTests: XCTestCase {
    /// A run directory `name` under a fresh directory whose metrics.jsonl is `text`.
    func run(_ text: String) throws -> String {
        let dir = try Fixtures.directory("cli-metrics-faults")
        try FileManager.default.createDirectory(atPath: "\(dir)/run", withIntermediateDirectories: true)
        try text.write(toFile: "\(dir)/run/metrics.jsonl", atomically: true, encoding: .utf8)
        return dir
    }

    /// CRLF line endings: plot and tensorboard read every line (they skipped all of them).
    func testCRLFMetricsArePlottedAndExported() throws {
        let dir = try run("{\"step\":1,\"train_loss\":4.5,\"lr\":0.001,\"grad_norm\":2,\"tokens_per_sec\":100,\"mfu\":null}\r\n"
                          + "{\"step\":2,\"train_loss\":4.25,\"lr\":0.001,\"grad_norm\":1.5,\"tokens_per_sec\":100,\"mfu\":null}\r\n"
                          + "{\"step\":2,\"val_loss\":4.5}\r\n")
        let plot = try Tool.run("gpt-train", ["plot", "run", "-o", "curves.svg"], in: dir)
        XCTAssertEqual(plot.status, 0, plot.stderr)
        XCTAssertFalse(plot.stderr.contains("skipped"), plot.stderr)
        XCTAssertTrue(plot.stderr.contains("wrote curves.svg: run (to step 2)"), plot.stderr)
        let export = try Tool.run("gpt-train", ["tensorboard", "run"], in: dir)
        XCTAssertEqual(export.status, 0, export.stderr)
        XCTAssertTrue(export.stderr.contains(": 3 events"), export.stderr)
        XCTAssertFalse(export.stderr.contains("skipped"), export.stderr)
    }

    /// A train_loss of 1e308 (beyond float32): both commands refuse naming the file, the line and the key, and
    /// write nothing (it was drawn as y="-nan" and exported as +inf).
    func testNumberBeyondFloat32IsRefused() throws {
        let dir = try run("{\"step\":1,\"train_loss\":4.5,\"lr\":0.001,\"grad_norm\":2}\n"
                          + "{\"step\":2,\"train_loss\":1e308,\"lr\":0.001,\"grad_norm\":2}\n")
        let plot = try Tool.run("gpt-train", ["plot", "run", "-o", "curves.svg"], in: dir)
        XCTAssertEqual(plot.status, 1, plot.stderr)
        XCTAssertTrue(plot.stderr.contains("run/metrics.jsonl:2: train_loss = 1e+308 is beyond float32's range"), plot.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(dir)/curves.svg"))
        let export = try Tool.run("gpt-train", ["tensorboard", "run"], in: dir)
        XCTAssertEqual(export.status, 1, export.stderr)
        XCTAssertTrue(export.stderr.contains("run/metrics.jsonl:2: train_loss = 1e+308"), export.stderr)
        XCTAssertEqual(EventFileCount.in("\(dir)/run/tb"), 0)
    }
}

private enum EventFileCount {
    static func `in`(_ directory: String) -> Int {
        ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).filter { $0.hasPrefix("events.out") }.count
    }
}
