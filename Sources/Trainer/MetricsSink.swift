import Durable
import Foundation
import Metrics
import Runtime

/// metrics.jsonl as a run writes it: one `MetricsLine` a logged step, evaluation, spike and health measurement, in
/// the shortest form that reads back as the same numbers (so two runs can be compared bit for bit), mirrored to
/// TensorBoard.
final class MetricsSink {
    let path: String
    private let handle: FileHandle
    /// The same lines as TensorBoard scalars under `<run>/tb/` (nil: metrics.jsonl only).
    var tensorBoard: TensorBoardLog?

    /// Opens `<runDirectory>/metrics.jsonl` for appending (a resumed run first drops the lines after the step it
    /// resumes from), with a TensorBoard event file under tb/ that receives every line written from now on.
    convenience init(runDirectory: String, resumingAt step: Int?) throws {
        try self.init(path: (runDirectory as NSString).appendingPathComponent("metrics.jsonl"), keepThrough: step)
        tensorBoard = try TensorBoardLog(runDirectory: runDirectory)
    }

    /// Opens the log for appending. When resuming from step `keepThrough`, lines of later steps (written by the
    /// run that stopped after its last checkpoint) are dropped first, so the log reads as one uninterrupted run.
    init(path: String, keepThrough step: Int?) throws {
        self.path = path
        let manager = FileManager.default
        if let step, let old = manager.contents(atPath: path) {
            let kept = MetricsFile.steps(of: String(decoding: old, as: UTF8.self)).filter { $0.step <= step }
            try AtomicFile.write(kept.map { $0.line + "\n" }.joined(), to: path)
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

    /// A logged step. Timing fields are rounded (tokens a second to an integer, MFU to 4 decimals, collective
    /// seconds to microseconds): they differ between runs anyway.
    func trainingLine(_ m: StepMetrics) throws {
        try write(MetricsLine(step: m.step, .training(.init(
            trainLoss: m.trainLoss, lr: m.lr, gradNorm: m.gradNorm, tokensPerSecond: m.tokensPerSecond.rounded(),
            mfu: m.mfu.map { ($0 * 1e4).rounded() / 1e4 },
            communicationSeconds: m.communicationSeconds.map { ($0 * 1e6).rounded() / 1e6 }))))
    }

    func validationLine(step: Int, loss: Double) throws {
        try write(MetricsLine(step: step, .validation(loss: loss)))
    }

    /// An `"event": "spike"` line, with `rolled_back_to` and `batches_passed_over` for a rollback.
    func spikeLine(_ spike: Spike) throws {
        try write(MetricsLine(step: spike.step, .event(.init(
            kind: "spike", loss: spike.loss, gradNorm: spike.gradNorm, action: spike.action.rawValue,
            reason: spike.reason.name, rolledBackTo: spike.rolledBackTo,
            batchesPassedOver: spike.rolledBackTo != nil ? spike.batchesPassedOver : nil))))
    }

    /// The health signals (see `HealthSignals`; tensors by their nanoGPT names).
    func healthLine(_ h: HealthSignals) throws {
        try write(MetricsLine(step: h.step, .health(.init(
            maxAbsLogit: h.maxAbsLogit, blockInputMaxAbs: h.blockInputMaxAbs,
            gradNorms: zip(h.tensors.map(\.name), h.gradientNorms).map { MetricsLine.Named($0, $1) },
            updateRatios: zip(h.tensors.map(\.name), h.updateRatios).map { MetricsLine.Named($0, $1) }))))
    }

    private func write(_ line: MetricsLine) throws {
        do { try handle.write(contentsOf: Data((try line.jsonLine() + "\n").utf8)) } catch {
            throw AtomicFile.WriteError(path: path, reason: "\(error)")
        }
        try tensorBoard?.record(line)
    }

    /// Writes the TensorBoard events kept in memory (after each checkpoint, so tb/ is as complete as the run).
    func flush() throws { try tensorBoard?.flush() }

    /// Writes and syncs what is pending and closes the TensorBoard file (at the end of the run and on errors).
    func close() throws {
        defer { tensorBoard = nil }
        try tensorBoard?.close()
    }
}
