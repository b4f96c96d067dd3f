import GPTShape
import Planner
import XCTest

/// `CPUTrainer` is the one rule for what gpt-train runs: the planner's CPU memory and layouts are its, and its
/// verdicts name the key and the fix.
final class CPUTrainerTests: XCTestCase {
    let shape = ModelShape(nLayer: 4, nHead: 4, dModel: 128, dFF: 512, seqLen: 64, vocabSize: 65, bias: false)

    func testThePlannerCountsCPUMemoryAsTheTrainerDoes() {
        for bf16 in [false, true] {
            let cpu = Hardware.cpu(memoryBytes: 24e9, fp32Flops: 1, bf16Flops: bf16 ? 2 : nil,
                                   source: "test")
            XCTAssertEqual(cpu.usableFraction, CPUTrainer.usableFraction)
            for micro in [1, 8] {
                let planned = LayoutModel.memory(shape: shape, layout: Layout(dataParallel: 1, microBatch: micro, gradAccum: 1),
                                                 hardware: cpu).total
                XCTAssertEqual(planned, CPUTrainer.memory(shape, microBatch: micro, products: bf16 ? .native : nil).total)
                XCTAssertEqual(planned, shape.trainingMemoryBytes(microBatch: micro, bf16Copies: bf16))
            }
            // ZeRO-1 over two ranks: each holds half the moments (8 bytes a parameter, 4 each).
            let n = Double(shape.parameterCount.total)
            let one = LayoutModel.memory(shape: shape, layout: Layout(dataParallel: 2, zeroStage: 0, microBatch: 1, gradAccum: 1),
                                         hardware: cpu).total
            let sharded = LayoutModel.memory(shape: shape, layout: Layout(dataParallel: 2, zeroStage: 1, microBatch: 1, gradAccum: 1),
                                             hardware: cpu).total
            XCTAssertEqual(one - sharded, 4 * n)
        }
        // fp32: 16 bytes a parameter and the activation layout; native bf16: 2 more and the activations' bf16 copies;
        // emulated: the rounded fp32 copy, 4 more.
        let n = Double(shape.parameterCount.total)
        let fp32 = CPUTrainer.memory(shape, microBatch: 2, products: nil)
        XCTAssertEqual(fp32.total, 16 * n + Double(shape.activationBytes(batch: 2)))
        XCTAssertEqual(CPUTrainer.memory(shape, microBatch: 2, products: .emulated).total - fp32.total, 4 * n)
        XCTAssertEqual(CPUTrainer.memory(shape, microBatch: 2, products: .native).total,
                       18 * n + Double(shape.activationBytes(batch: 2, bf16Copies: true)))
    }

    func testTheUsableShareIsTheBoundary() {
        let run = CPUTrainer.Run(shape: shape, microBatch: 4, context: 64, precision: .fp32)
        let needed = CPUTrainer.memory(shape, microBatch: 4, context: 64, products: nil).total
        XCTAssertEqual(CPUTrainer(memoryBytes: needed / 0.9, bf16Products: .native).problems(run), [])
        XCTAssertEqual(CPUTrainer(memoryBytes: (needed / 0.9) * 2, bf16Products: .native, ranksHere: 2).problems(run), [])
        let short = CPUTrainer(memoryBytes: needed / 0.9 * 0.999, bf16Products: .native).problems(run)
        XCTAssertEqual(short.map(\.key), ["training.micro_batch"])
        XCTAssertTrue(short[0].description.hasPrefix("training.micro_batch: the run needs "), short[0].description)
        XCTAssertTrue(short[0].description.hasSuffix(". Fix: lower training.micro_batch (and raise grad_accum to keep the batch), set training.recompute = \"full\" (it keeps only each block's input), or train a smaller model"), short[0].description)
        var full = run
        full.recompute = .full
        let fullShort = CPUTrainer(memoryBytes: 1, bf16Products: .native).problems(full)
        XCTAssertTrue(fullShort[0].description.contains("activations (recompute \"full\")"), fullShort[0].description)
        XCTAssertTrue(fullShort[0].description.hasSuffix(". Fix: lower training.micro_batch (and raise grad_accum to keep the batch), or train a smaller model"))
        let twoRanks = CPUTrainer(memoryBytes: needed / 0.9 * 1.5, bf16Products: .native, ranksHere: 2).problems(run)
        XCTAssertTrue(twoRanks.first?.message.contains("on each of the 2 ranks here") ?? false)
    }

    func testLayoutAndModelProblemsNameTheKeyAndTheFix() {
        var run = CPUTrainer.Run(shape: shape, microBatch: 1, context: 64, precision: .fp32, tensorParallel: 2,
                                 pipelineParallel: 2, zeroStage: 2, recompute: .full)
        let machine = CPUTrainer(memoryBytes: 1e12, bf16Products: .native)
        XCTAssertEqual(machine.problems(run).map(\.description), [
            "training.tensor_parallel: is 2, but gpt-train trains data parallel only (one model replica a process). Fix: set training.tensor_parallel = 1 (and training.devices to the data-parallel processes), or run this layout on a GPU framework",
            "training.pipeline_parallel: is 2, but gpt-train trains data parallel only (one model replica a process). Fix: set training.pipeline_parallel = 1 (and training.devices to the data-parallel processes), or run this layout on a GPU framework",
            "training.zero_stage: is 2, but gpt-train implements ZeRO stages 0 and 1. Fix: set training.zero_stage = 1 (optimizer state sharded over the data-parallel ranks) or 0",
        ])
        // Every recompute mode runs on the CPU (recomputation in the backward pass, bit-identical to none).
        XCTAssertEqual(CPUTrainer.recomputeModes, Recompute.allCases)
        run.shape.tieEmbeddings = false
        XCTAssertEqual(machine.problems(run).first?.description,
                       "model.tie_embeddings = false: gpt-train's GPT-2 model ties the output head to the token embedding. Fix: set model.tie_embeddings = true")
        // The planner's CPU search tries exactly the layouts without a problem.
        for zero in 0...3 {
            XCTAssertEqual(CPUTrainer.zeroStages.contains(zero),
                           CPUTrainer.layoutProblems(tensorParallel: 1, pipelineParallel: 1, zeroStage: zero).isEmpty)
        }
    }
}
