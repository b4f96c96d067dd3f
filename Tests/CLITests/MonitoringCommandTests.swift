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
