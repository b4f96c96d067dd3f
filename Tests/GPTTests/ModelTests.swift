import Compute
import Foundation
import GPT
import GPTShape
import Planner
import XCTest

/// The float32/BLAS model against the independent double-precision reference (ReferenceGPT.swift).
final class ModelTests: XCTestCase {
    func refConfig(bias: Bool) -> ReferenceGPT.Config {
        .init(nLayer: 2, nHead: 2, dModel: 16, dFF: 64, seqLen: 8, vocabSize: 11, bias: bias)
    }

    func modelShape(_ c: ReferenceGPT.Config) -> ModelShape {
        ModelShape(nLayer: c.nLayer, nHead: c.nHead, dModel: c.dModel, dFF: c.dFF, seqLen: c.seqLen,
                   vocabSize: c.vocabSize, bias: c.bias)
    }

    /// A reference model with large enough weights that every path matters (the reference's own init is nanoGPT's
    /// 0.02; ten times that makes attention and the MLP far from linear).
    func reference(bias: Bool, seed: UInt64) -> ReferenceGPT {
        var ref = ReferenceGPT.random(refConfig(bias: bias), seed: seed)
        for (name, values) in ref.params where !name.contains("ln_") {
            ref.params[name] = values.map { $0 * 10 }
        }
        return ref
    }

    func load(_ ref: ReferenceGPT, into model: GPT) {
        for tensor in model.layout.tensors {
            let values = ref.params[tensor.name]!
            XCTAssertEqual(values.count, tensor.count, tensor.name)
            for i in 0..<tensor.count { model.parameters.base[tensor.offset + i] = Float(values[i]) }
        }
    }

    func randomBatch(_ seed: UInt64, batch: Int, time: Int, vocab: Int) -> (tokens: [[Int]], targets: [[Int]]) {
        var rng = Xoshiro256(seed: seed)
        let draw = { (0..<batch).map { _ in (0..<time).map { _ in Int(rng.next(below: UInt64(vocab))) } } }
        return (draw(), draw())
    }

    func flat(_ x: [[Int]]) -> [Int32] { x.flatMap { $0.map(Int32.init) } }

    /// Per-tensor comparison: every element within 2e-5 of the tensor's largest reference gradient. Float32 has a
    /// unit roundoff of 6e-8; through two blocks forward and back, a gradient element is the result of a few
    /// hundred roundings, so errors of ~1e-6 of the tensor's scale are expected (measured: 1.2e-6 at worst).
    /// Elements near zero are judged against the tensor's scale, not their own.
    func assertGradients(_ model: GPT, _ expected: [String: [Double]], scale factor: Double = 1,
                         file: StaticString = #filePath, line: UInt = #line) {
        for tensor in model.layout.tensors {
            let reference = expected[tensor.name]!.map { $0 * factor }
            let biggest = reference.map(abs).max()!
            var worst = 0.0
            for i in 0..<tensor.count {
                let g = Double(model.gradients.base[tensor.offset + i])
                worst = max(worst, abs(g - reference[i]) / (biggest + 1e-12))
            }
            XCTAssertLessThan(worst, 2e-5, "\(tensor.name): worst error \(worst) of max \(biggest)", file: file, line: line)
        }
    }

    func testLossLogitsAndEveryGradientMatchTheReference() throws {
        for (bias, time) in [(true, 8), (false, 5)] {
            let ref = reference(bias: bias, seed: bias ? 1 : 2)
            let model = try GPT(shape: modelShape(ref.config), maxBatch: 3, maxTime: 8, pool: ThreadPool(threads: 2))
            load(ref, into: model)
            let (tokens, targets) = randomBatch(7, batch: 3, time: time, vocab: 11)
            let (expectedLoss, expectedGradients) = ref.lossAndGradients(tokens: tokens, targets: targets)
            let expectedLogits = ref.logits(tokens: tokens)

            let t = flat(tokens), y = flat(targets)
            let loss = try model.forward(tokens: t, targets: y, batch: 3, time: time)
            XCTAssertEqual(Double(loss), expectedLoss, accuracy: 1e-5 * expectedLoss, "loss")
            for b in 0..<3 { for i in 0..<time { for v in 0..<11 {
                XCTAssertEqual(Double(model.logits[(b * time + i) * 11 + v]), expectedLogits[b][i][v], accuracy: 1e-4)
            } } }

            let trainLoss = try model.forward(tokens: t, targets: y, batch: 3, time: time, gradientScale: 1 / Float(3 * time))
            XCTAssertEqual(trainLoss, loss)
            model.backward(accumulate: false)
            assertGradients(model, expectedGradients)
        }
    }

    func testAccumulatedMicroBatchesGiveTheMeanGradient() throws {
        let ref = reference(bias: true, seed: 3)
        let model = try GPT(shape: modelShape(ref.config), maxBatch: 2, maxTime: 8, pool: ThreadPool(threads: 2))
        load(ref, into: model)
        let first = randomBatch(11, batch: 2, time: 8, vocab: 11), second = randomBatch(12, batch: 2, time: 8, vocab: 11)
        // The reference's gradient of the mean over all four sequences.
        let (_, expected) = ref.lossAndGradients(tokens: first.tokens + second.tokens, targets: first.targets + second.targets)
        // Garbage in the gradients must not survive the first micro-batch.
        model.gradients.base.update(repeating: .nan, count: model.gradients.count)
        for (index, batch) in [first, second].enumerated() {
            try model.forward(tokens: flat(batch.tokens), targets: flat(batch.targets), batch: 2, time: 8, gradientScale: 1 / 32)
            model.backward(accumulate: index > 0)
        }
        assertGradients(model, expected)
    }

    func testSameThreadCountIsBitIdenticalAndOtherCountsAgree() throws {
        let ref = reference(bias: false, seed: 4)
        let batch = randomBatch(5, batch: 3, time: 8, vocab: 11)
        func gradients(threads: Int) throws -> [Float] {
            let model = try GPT(shape: modelShape(ref.config), maxBatch: 3, maxTime: 8, pool: ThreadPool(threads: threads))
            load(ref, into: model)
            try model.forward(tokens: flat(batch.tokens), targets: flat(batch.targets), batch: 3, time: 8, gradientScale: 1 / 24)
            model.backward(accumulate: false)
            return Array(model.gradients.buffer)
        }
        let two = try gradients(threads: 2)
        XCTAssertEqual(two, try gradients(threads: 2))
        let one = try gradients(threads: 1), three = try gradients(threads: 3)
        let scale = two.map(abs).max()!
        for i in 0..<two.count {
            XCTAssertEqual(one[i], two[i], accuracy: 1e-5 * scale)
            XCTAssertEqual(three[i], two[i], accuracy: 1e-5 * scale)
        }
    }

    func testDropoutBackwardMatchesFiniteDifferencesOfTheSameMasks() throws {
        var cfg = modelShape(refConfig(bias: true))
        cfg.nLayer = 1
        let ref = reference(bias: true, seed: 6)
        let model = try GPT(shape: cfg, maxBatch: 2, maxTime: 8, pool: ThreadPool(threads: 2))
        var refOneLayer = ref
        refOneLayer.params = ref.params.filter { !$0.key.contains(".h.1.") }
        load(refOneLayer, into: model)
        let batch = randomBatch(9, batch: 2, time: 8, vocab: 11)
        let t = flat(batch.tokens), y = flat(batch.targets)
        let context = DropoutContext(probability: 0.2, seed: 77, step: 3, micro: 1)
        let evalLoss = try model.forward(tokens: t, targets: y, batch: 2, time: 8)
        let dropLoss = try model.forward(tokens: t, targets: y, batch: 2, time: 8, dropout: context)
        XCTAssertNotEqual(evalLoss, dropLoss, "dropout must change the training loss")
        XCTAssertEqual(try model.forward(tokens: t, targets: y, batch: 2, time: 8, dropout: context), dropLoss,
                       "the same context must draw the same masks")
        try model.forward(tokens: t, targets: y, batch: 2, time: 8, gradientScale: 1 / 16, dropout: context)
        model.backward(accumulate: false)
        let analytic = Array(model.gradients.buffer)
        // Central differences of the float32 loss with h = 1e-2: truncation O(h²) ≈ 1e-4 relative and rounding
        // ≈ 1e-7/h = 1e-5, against a 1/(1 − p) = 1.25 scaling error if a mask were applied wrongly.
        var rng = Xoshiro256(seed: 10)
        for _ in 0..<24 {
            let i = Int(rng.next(below: UInt64(model.layout.count)))
            let saved = model.parameters.base[i]
            model.parameters.base[i] = saved + 1e-2
            let up = Double(try model.forward(tokens: t, targets: y, batch: 2, time: 8, dropout: context))
            model.parameters.base[i] = saved - 1e-2
            let down = Double(try model.forward(tokens: t, targets: y, batch: 2, time: 8, dropout: context))
            model.parameters.base[i] = saved
            let numeric = (up - down) / 2e-2
            XCTAssertEqual(Double(analytic[i]), numeric, accuracy: 0.01 * abs(numeric) + 2e-4, "parameter \(i)")
        }
    }

    /// Ids outside the vocabulary would index the embedding and the logits out of bounds: they are errors, thrown
    /// before any buffer is touched, in release builds too (this test runs in them).
    func testTokenIdsOutsideTheVocabularyAreErrorsNotCrashes() throws {
        let shape = ModelShape(nLayer: 1, nHead: 2, dModel: 8, dFF: 16, seqLen: 4, vocabSize: 10, bias: true)
        let model = try GPT(shape: shape, maxBatch: 2, maxTime: 4, pool: ThreadPool(threads: 2))
        model.initialize(seed: 1)
        let good: [Int32] = [1, 2, 3, 4, 5, 6, 7, 9]
        let loss = try model.forward(tokens: good, targets: good, batch: 2, time: 4)
        func expect(_ expected: GPTInputError, _ body: () throws -> Void) {
            XCTAssertThrowsError(try body()) { XCTAssertEqual($0 as? GPTInputError, expected) }
        }
        var bad = good
        bad[5] = 10
        expect(.tokenOutOfRange(index: 5, token: 10, vocabSize: 10)) { try model.forward(tokens: bad, targets: good, batch: 2, time: 4) }
        expect(.targetOutOfRange(index: 5, target: 10, vocabSize: 10)) { try model.forward(tokens: good, targets: bad, batch: 2, time: 4) }
        bad[5] = -1
        expect(.tokenOutOfRange(index: 5, token: -1, vocabSize: 10)) { try model.forward(tokens: bad, targets: good, batch: 2, time: 4) }
        bad[5] = .max
        expect(.tokenOutOfRange(index: 5, token: .max, vocabSize: 10)) { try model.forward(tokens: bad, targets: good, batch: 2, time: 4) }
        expect(.batchOutOfRange(batch: 4, time: 2, maxBatch: 2, maxTime: 4)) {
            try model.forward(tokens: good, targets: good, batch: 4, time: 2)
        }
        // Nothing was touched: the same batch gives the same loss.
        XCTAssertEqual(try model.forward(tokens: good, targets: good, batch: 2, time: 4), loss)

        // Generation: the sequence is left as it was.
        let generator = Generator(model: try GPT(shape: shape, maxBatch: 1, maxTime: 4, pool: ThreadPool(threads: 1)))
        generator.model.parameters.base.update(from: model.parameters.base, count: model.parameters.count)
        let first = Array(UnsafeBufferPointer(start: try generator.append([1, 2]), count: 10))
        XCTAssertThrowsError(try generator.append([3, 12])) { XCTAssertEqual($0 as? GPTInputError, .tokenOutOfRange(index: 3, token: 12, vocabSize: 10)) }
        generator.reset()
        XCTAssertEqual(Array(UnsafeBufferPointer(start: try generator.append([1, 2]), count: 10)), first)

        // Shapes no model can have are errors too.
        var odd = shape
        odd.nHead = 3
        XCTAssertThrowsError(try GPT(shape: odd, maxBatch: 1, maxTime: 4, pool: ThreadPool(threads: 1))) {
            XCTAssertEqual($0 as? GPTInputError, .invalidShape(.headsDoNotDivideWidth(dModel: 8, nHead: 3)))
        }
        XCTAssertThrowsError(try GPT(shape: shape, maxBatch: 1, maxTime: 5, pool: ThreadPool(threads: 1))) {
            XCTAssertEqual($0 as? GPTInputError, .bufferLongerThanContext(maxTime: 5, seqLen: 4))
        }
    }

    func testActivationCountIsWhatThePlannerPredicts() throws {
        let cfg = ModelShape(nLayer: 3, nHead: 4, dModel: 32, dFF: 128, seqLen: 16, vocabSize: 50, bias: true)
        let model = try GPT(shape: cfg, maxBatch: 5, maxTime: 12, pool: ThreadPool(threads: 1))
        let shape = ModelShape(nLayer: 3, nHead: 4, dModel: 32, dFF: 128, seqLen: 16, vocabSize: 50, bias: true)
        XCTAssertEqual(model.activationCount, shape.activationFloats(batch: 5, context: 12))
        XCTAssertEqual(model.layout.count, shape.parameterCount.total)
    }

    func testInitialisationFollowsNanoGPT() throws {
        let cfg = ModelShape(nLayer: 4, nHead: 4, dModel: 128, dFF: 512, seqLen: 64, vocabSize: 65, bias: true)
        let model = try GPT(shape: cfg, maxBatch: 1, maxTime: 64, pool: ThreadPool(threads: 1))
        model.initialize(seed: 1337)
        func values(_ name: String) -> [Float] {
            let t = model.layout.tensor(named: name)!
            return Array(UnsafeBufferPointer(start: model.parameters.base + t.offset, count: t.count))
        }
        func std(_ x: [Float]) -> Double {
            let m = x.map(Double.init).reduce(0, +) / Double(x.count)
            return (x.map { (Double($0) - m) * (Double($0) - m) }.reduce(0, +) / Double(x.count)).squareRoot()
        }
        // 65 536 draws estimate a standard deviation to about 0.3%.
        XCTAssertEqual(std(values("transformer.h.0.mlp.c_fc.weight")), 0.02, accuracy: 0.0005)
        XCTAssertEqual(std(values("transformer.h.2.attn.c_proj.weight")), 0.02 / 8.0.squareRoot(), accuracy: 0.0002)
        XCTAssertEqual(std(values("transformer.h.3.mlp.c_proj.weight")), 0.02 / 8.0.squareRoot(), accuracy: 0.0002)
        XCTAssertEqual(std(values("transformer.wpe.weight")), 0.02, accuracy: 0.0005)
        XCTAssertEqual(Set(values("transformer.h.1.ln_2.weight")), [1])
        XCTAssertEqual(Set(values("transformer.h.1.mlp.c_fc.bias")), [0])
        XCTAssertEqual(Set(values("transformer.ln_f.bias")), [0])
        let again = try GPT(shape: cfg, maxBatch: 1, maxTime: 64, pool: ThreadPool(threads: 1))
        again.initialize(seed: 1337)
        XCTAssertEqual(Array(again.parameters.buffer), Array(model.parameters.buffer))
    }

    func testParameterNamesAndDecayFollowNanoGPT() throws {
        let cfg = ModelShape(nLayer: 1, nHead: 2, dModel: 8, dFF: 32, seqLen: 4, vocabSize: 10, bias: true)
        let layout = ParameterLayout(cfg)
        XCTAssertEqual(layout.tensors.map(\.name), ReferenceGPT.parameterShapes(refConfig(bias: true).with(cfg)).map(\.name))
        XCTAssertEqual(layout.tensors.map(\.shape), ReferenceGPT.parameterShapes(refConfig(bias: true).with(cfg)).map(\.shape))
        // Decayed tensors first, then the rest, each tensor inside its range.
        for t in layout.tensors {
            XCTAssertEqual(t.decays, t.offset < layout.decayedCount, t.name)
            XCTAssertLessThanOrEqual(t.offset + t.count, t.decays ? layout.decayedCount : layout.count)
        }
        XCTAssertEqual(layout.tensors.map(\.count).reduce(0, +), layout.count)
    }
}

extension GPT {
    @discardableResult
    func forward(tokens: [Int32], targets: [Int32], batch: Int, time: Int, gradientScale: Float? = nil,
                 dropout: DropoutContext? = nil) throws -> Float {
        try tokens.withUnsafeBufferPointer { t in
            try targets.withUnsafeBufferPointer { y in
                try forward(tokens: t.baseAddress!, targets: y.baseAddress!, batch: batch, time: time,
                        gradientScale: gradientScale, dropout: dropout)
            }
        }
    }
}

extension ReferenceGPT.Config {
    func with(_ c: ModelShape) -> ReferenceGPT.Config {
        .init(nLayer: c.nLayer, nHead: c.nHead, dModel: c.dModel, dFF: c.dFF, seqLen: c.seqLen, vocabSize: c.vocabSize, bias: c.bias)
    }
}
