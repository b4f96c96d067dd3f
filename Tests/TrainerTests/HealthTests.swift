import Compute
import Foundation
import GPT
import Recipe
import TestFixtures
import Runtime
import Trainer
import XCTest

/// Health signals against an independent computation on a small model: a second copy of the model takes the same
/// micro-batch by hand (its own forward and backward passes), the norms are summed in Double here, and the first
/// block's input is rebuilt from the embedding tables.
final class HealthTests: XCTestCase {
    func testHealthSignalsMatchAnIndependentComputation() throws {
        let dir = try Fixtures.directory("health")
        var o = Fixtures.Options()
        o.steps = 6
        o.logInterval = 3
        o.evalInterval = 6
        o.checkpointInterval = 6
        let path = try Fixtures.recipe(in: dir, o)
        let trainer = try Trainer(recipePath: path, options: TrainingOptions(runDirectory: "\(dir)/run", threads: 2))
        let twin = try Trainer(recipePath: path, options: TrainingOptions(runDirectory: "\(dir)/twin", threads: 2))
        for _ in 0..<2 {
            try trainer.trainStep()
            try twin.trainStep()
        }
        XCTAssertEqual(trainer.health?.step, 0, "health_interval = logging.interval = 3: nothing measured at steps 1-2")

        // Step 3 by hand on the twin: the batch the sampler draws next, one micro-batch (grad_accum 1).
        let batch = o.microBatch, time = o.seqLen, model = twin.model
        let tokens = UnsafeMutablePointer<Int32>.allocate(capacity: batch * time)
        let targets = UnsafeMutablePointer<Int32>.allocate(capacity: batch * time)
        defer { tokens.deallocate(); targets.deallocate() }
        var sampler = twin.state.sampler
        sampler.fill(from: twin.data.train, batch: batch, time: time, tokens: tokens, targets: targets)
        _ = try model.forward(tokens: tokens, targets: targets, batch: batch, time: time, gradientScale: 1 / Float(batch * time))
        model.backward(accumulate: false)
        let before = Array(model.parameters.buffer)

        try trainer.trainStep()
        let h = try XCTUnwrap(trainer.health)
        XCTAssertEqual(h.step, 3)
        let after = Array(trainer.model.parameters.buffer)
        for (i, t) in model.layout.tensors.enumerated() {
            var g = 0.0, d = 0.0, w = 0.0
            for j in t.offset..<(t.offset + t.count) {
                g += Double(model.gradients.base[j]) * Double(model.gradients.base[j])
                d += (Double(after[j]) - Double(before[j])) * (Double(after[j]) - Double(before[j]))
                w += Double(before[j]) * Double(before[j])
            }
            // The same float gradients summed in another order: agreement to float32 precision.
            XCTAssertEqual(h.gradientNorms[i], g.squareRoot(), accuracy: 1e-5 * g.squareRoot() + 1e-12, t.name)
            if w > 0 {
                XCTAssertEqual(h.updateRatios[i], (d / w).squareRoot(), accuracy: 1e-6 * (d / w).squareRoot() + 1e-12, t.name)
            } else {
                XCTAssertEqual(h.updateRatios[i], d > 0 ? .infinity : 0, t.name)   // zero-initialised biases
            }
        }
        // Updates are about lr per weight, so ratios are small but not zero.
        let wte = try XCTUnwrap(model.layout.tensors.firstIndex { $0.name == "transformer.wte.weight" })
        XCTAssertGreaterThan(h.updateRatios[wte], 1e-4)
        XCTAssertLessThan(h.updateRatios[wte], 0.5)

        // Block 0's input is the embeddings: wte[token] + wpe[position] (no dropout in the probe), from the weights
        // before the update.
        let c = o.dModel
        let wteOffset = model.layout.tensors[wte].offset
        let wpeOffset = try XCTUnwrap(model.layout.tensors.first { $0.name == "transformer.wpe.weight" }).offset
        var largest: Float = 0
        for b in 0..<batch {
            for p in 0..<time {
                let token = Int(tokens[b * time + p])
                for k in 0..<c { largest = max(largest, abs(before[wteOffset + token * c + k] + before[wpeOffset + p * c + k])) }
            }
        }
        XCTAssertEqual(h.blockInputMaxAbs[0], Double(largest))
        XCTAssertEqual(h.blockInputMaxAbs.count, o.nLayer)
        // The largest |logit|: an eval forward pass of the twin (still at the weights before the update) over the batch.
        _ = try model.forward(tokens: tokens, targets: nil, batch: batch, time: time)
        var logit: Float = 0
        for i in 0..<(batch * time * o.vocabSize) { logit = max(logit, abs(model.logits[i])) }
        XCTAssertEqual(h.maxAbsLogit, Double(logit))
        XCTAssertGreaterThan(h.maxAbsLogit, 0)

        // In metrics.jsonl: a health line every 3 steps, train lines unchanged.
        try trainer.run()
        let text = try String(contentsOfFile: "\(dir)/run/metrics.jsonl", encoding: .utf8)
        let lines = try text.split(separator: "\n").map { try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
        let health = lines.filter { $0["health"] != nil }
        XCTAssertEqual(health.map { $0["step"] as! Int }, [6])
        let object = try XCTUnwrap(health.first?["health"] as? [String: Any])
        XCTAssertEqual(Set(object.keys), ["max_abs_logit", "block_input_max_abs", "grad_norm", "update_ratio"])
        XCTAssertEqual((object["grad_norm"] as? [String: Any])?.count, model.layout.tensors.count)
    }
}
