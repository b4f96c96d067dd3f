import Durable
import Foundation

/// metrics.jsonl: one JSON object a line, `step`, `train_loss`, `lr`, `grad_norm`, `tokens_per_sec`, `mfu` (and
/// `comm_seconds` in data-parallel runs) on training lines and `step`, `val_loss` on validation lines. Numbers are written in the shortest form that reads
/// back as the same float, so two runs can be compared bit for bit.
final class MetricsLog {
    let path: String
    private let handle: FileHandle

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

    private func write(_ line: String) throws {
        do { try handle.write(contentsOf: Data((line + "\n").utf8)) } catch {
            throw AtomicFile.WriteError(path: path, reason: "\(error)")
        }
    }

    private func json(_ x: Double) -> String {
        guard x.isFinite else { return "null" }
        if x == x.rounded(), abs(x) < 1e15 { return String(Int64(x)) }
        return "\(x)"
    }
}
