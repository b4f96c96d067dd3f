import Durable
import Foundation
import RunReports

/// metrics.jsonl: one JSON object a line, `step`, `train_loss`, `lr`, `grad_norm`, `tokens_per_sec`, `mfu` (and
/// `comm_seconds` in data-parallel runs) on training lines, `step`, `val_loss` on validation lines, and
/// `"event": "spike"` lines (see `spikeLine`). Numbers are written in the shortest form that reads
/// back as the same float, so two runs can be compared bit for bit.
final class MetricsLog {
    let path: String
    private let handle: FileHandle
    /// The same lines as TensorBoard scalars under `<run>/tb/` (nil: metrics.jsonl only).
    var tensorBoard: TensorBoardLog?

    /// Opens the log for appending. When resuming from step `keepThrough`, lines of later steps (written by the
    /// run that stopped after its last checkpoint) are dropped first, so the log reads as one uninterrupted run.
    init(path: String, keepThrough step: Int?) throws {
        self.path = path
        let manager = FileManager.default
        if let step, let old = manager.contents(atPath: path) {
            let kept = String(decoding: old, as: UTF8.self).split(separator: "\n").filter { line in
                guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                      let lineStep = object["step"] as? Int else { return false }
                return lineStep <= step
            }
            try AtomicFile.write(kept.map { $0 + "\n" }.joined(), to: path)
        } else {
            try AtomicFile.write("", to: path)
        }
        guard let handle = FileHandle(forWritingAtPath: path) else {
            throw AtomicFile.WriteError(path: path, reason: "cannot open for appending")
        }
        handle.seekToEndOfFile()
        self.handle = handle
    }

    deinit { try? handle.close() }

    func trainingLine(_ m: StepMetrics) throws {
        let loss = m.trainLoss.isFinite ? "\(m.trainLoss)" : "null"
        var line = "{\"step\":\(m.step),\"train_loss\":\(loss),\"lr\":\(json(m.lr)),"
        line += "\"grad_norm\":\(json(m.gradNorm)),\"tokens_per_sec\":\(json(m.tokensPerSecond.rounded()))"
        line += ",\"mfu\":\(m.mfu.map { json(($0 * 1e4).rounded() / 1e4) } ?? "null")"
        if let c = m.communicationSeconds { line += ",\"comm_seconds\":\(json((c * 1e6).rounded() / 1e6))" }
        line += "}"
        try write(line)
    }

    func validationLine(step: Int, loss: Double) throws {
        try write("{\"step\":\(step),\"val_loss\":\(json(loss))}")
    }

    /// `{"step":…,"event":"spike","loss":…,"grad_norm":…,"action":…,"reason":…}`, with `rolled_back_to` and
    /// `batches_passed_over` for a rollback (null for a value that is not finite).
    func spikeLine(_ spike: Spike) throws {
        let loss = spike.loss.isFinite ? "\(spike.loss)" : "null"
        var line = "{\"step\":\(spike.step),\"event\":\"spike\",\"loss\":\(loss),\"grad_norm\":\(json(spike.gradNorm))"
        line += ",\"action\":\"\(spike.action.rawValue)\",\"reason\":\"\(spike.reason.name)\""
        if let back = spike.rolledBackTo {
            line += ",\"rolled_back_to\":\(back),\"batches_passed_over\":\(spike.batchesPassedOver)"
        }
        try write(line + "}")
    }

    /// `{"step":…,"health":{"max_abs_logit":…,"block_input_max_abs":{"0":…},"grad_norm":{tensor:…},
    /// "update_ratio":{tensor:…}}}` (see `HealthSignals`; tensors by their nanoGPT names).
    func healthLine(_ h: HealthSignals) throws {
        func object(_ pairs: [(String, Double)]) -> String {
            "{" + pairs.map { "\"\($0.0)\":\(json($0.1))" }.joined(separator: ",") + "}"
        }
        var line = "{\"step\":\(h.step),\"health\":{\"max_abs_logit\":\(json(h.maxAbsLogit))"
        line += ",\"block_input_max_abs\":" + object(h.blockInputMaxAbs.enumerated().map { ("\($0.offset)", $0.element) })
        line += ",\"grad_norm\":" + object(zip(h.tensors.map(\.name), h.gradientNorms).map { ($0, $1) })
        line += ",\"update_ratio\":" + object(zip(h.tensors.map(\.name), h.updateRatios).map { ($0, $1) })
        try write(line + "}}")
    }

    private func write(_ line: String) throws {
        do { try handle.write(contentsOf: Data((line + "\n").utf8)) } catch {
            throw AtomicFile.WriteError(path: path, reason: "\(error)")
        }
        try tensorBoard?.record(line: line)
    }

    /// Writes the TensorBoard events kept in memory (after each checkpoint, so tb/ is as complete as the run).
    func flush() throws { try tensorBoard?.flush() }

    /// Writes and syncs what is pending and closes the TensorBoard file (at the end of the run and on errors).
    func close() throws {
        defer { tensorBoard = nil }
        try tensorBoard?.close()
    }

    private func json(_ x: Double) -> String {
        guard x.isFinite else { return "null" }
        if x == x.rounded(), abs(x) < 1e15 { return String(Int64(x)) }
        return "\(x)"
    }
}
