import Foundation
import GPTShape
import Planner
import XCTest

/// `Estimate`: a given model on given hardware; the memory terms against EleutherAI's cookbook, the Llama 3 405B
/// layout, the utilisations, and Hugging Face configs.
final class EstimateTests: XCTestCase {
    /// EleutherAI cookbook, calc/calc_transformer_mem.py (2-byte weights, 4-byte gradients, 12-byte AdamW state;
    /// it counts an untied head, 2·V·h, and the Korthikanti activations of every layer), run on these arguments;
    /// its per-GPU figures in GiB as it prints them (2 decimals): weights, gradients, optimizer, activations. Our
    /// model with `.fp32Gradients` and the same shape (untied head, biases) must agree within 5% a term, where the
    /// two count the same thing: with t = 1 at every ZeRO stage, and with t > 1 at ZeRO-2 with the cookbook's
    /// --partition-activations (Megatron's sequence parallelism). Elsewhere the cookbook's formulas differ from
    /// ours by design (docs/planner.md): at ZeRO 0 and 1 it keeps the gradients (and at ZeRO-0 the optimizer
    /// state) of the whole model on a tensor-parallel rank, at ZeRO-3 it divides the weights by t·p and again by
    /// all devices, and it has no output-layer activations.
    func testMemoryTermsMatchEleutherAIsCookbook() throws {
        struct Case {
            var args: String
            var l: Int, h: Int, a: Int, s: Int, v: Int, b: Int, gpus: Int, t: Int, zero: Int, recompute: Recompute
            var expected: [Double]   // GiB: weights, gradients, optimizer, activations
        }
        let cases = [
            Case(args: "-l 24 -hs 2048 -a 16 -s 2048 -v 50257 -b 4 --num-gpus 8 -z 0", l: 24, h: 2048, a: 16, s: 2048,
                 v: 50257, b: 4, gpus: 8, t: 1, zero: 0, recompute: .none, expected: [2.64, 5.28, 15.85, 42.75]),
            Case(args: "... -z 1", l: 24, h: 2048, a: 16, s: 2048, v: 50257, b: 4, gpus: 8, t: 1, zero: 1,
                 recompute: .none, expected: [2.64, 5.28, 1.98, 42.75]),
            Case(args: "... -z 2", l: 24, h: 2048, a: 16, s: 2048, v: 50257, b: 4, gpus: 8, t: 1, zero: 2,
                 recompute: .none, expected: [2.64, 0.66, 1.98, 42.75]),
            Case(args: "... -z 3", l: 24, h: 2048, a: 16, s: 2048, v: 50257, b: 4, gpus: 8, t: 1, zero: 3,
                 recompute: .none, expected: [0.33, 0.66, 1.98, 42.75]),
            Case(args: "-l 32 -hs 4096 -a 32 -s 2048 -v 50257 -b 1 --num-gpus 64 -tp 8 -z 2 -pa", l: 32, h: 4096, a: 32,
                 s: 2048, v: 50257, b: 1, gpus: 64, t: 8, zero: 2, recompute: .none, expected: [1.60, 0.40, 1.20, 3.56]),
            // --checkpoint-activations keeps 34·sbh a layer: selective recomputation's count.
            Case(args: "-l 44 -hs 6144 -a 64 -s 2048 -v 51200 -b 2 --num-gpus 128 -tp 2 -z 2 -pa -ca", l: 44, h: 6144,
                 a: 64, s: 2048, v: 51200, b: 2, gpus: 128, t: 2, zero: 2, recompute: .selective,
                 expected: [19.16, 0.60, 1.80, 17.53]),
        ]
        for c in cases {
            let shape = ModelShape(nLayer: c.l, nHead: c.a, dModel: c.h, dFF: 4 * c.h, seqLen: c.s, vocabSize: c.v,
                                   bias: true, tieEmbeddings: false)
            let layout = Layout(dataParallel: c.gpus / c.t, tensorParallel: c.t, zeroStage: c.zero,
                                recompute: c.recompute, microBatch: c.b, gradAccum: 1)
            let m = LayoutModel.memory(shape: shape, layout: layout, hardware: .a100_80gb, conventions: .fp32Gradients)
            let ours = [m.weights, m.gradients, m.optimizer, m.activations].map { $0 / 0x1p30 }
            for (name, (mine, theirs)) in zip(["weights", "gradients", "optimizer", "activations"], zip(ours, c.expected)) {
                XCTAssertEqual(mine, theirs, accuracy: 0.05 * theirs, "\(c.args): \(name)")
            }
        }
        // Llama 3 8B at sequence 4096 on 16 GPUs, ZeRO-1 (cookbook: -ff 3.5 -nl 3 -kv 0.25, untied head): the model
        // state agrees; its activations apply GPT-2's 34 + 5as/h to a SwiGLU/GQA block, ours the derived count.
        let l8 = ModelShape(nLayer: 32, nHead: 32, dModel: 4096, dFF: 14336, seqLen: 4096, vocabSize: 128_256,
                            bias: false, family: .llama, nKVHead: 8)
        let m = LayoutModel.memory(shape: l8, layout: Layout(dataParallel: 16, zeroStage: 1, microBatch: 1, gradAccum: 1),
                                   hardware: .h100_sxm_80gb, conventions: .fp32Gradients)
        for (mine, theirs) in zip([m.weights, m.gradients, m.optimizer].map { $0 / 0x1p30 }, [14.99, 29.98, 5.62]) {
            XCTAssertEqual(mine, theirs, accuracy: 0.05 * theirs)
        }
    }

    static let llama405 = ModelShape(nLayer: 126, nHead: 128, dModel: 16384, dFF: 53248, seqLen: 8192,
                                     vocabSize: 128_256, bias: false, family: .llama, nKVHead: 8,
                                     ropeTheta: 500_000)

    /// Llama 3 405B's published layout (Dubey et al. 2024, Table 4: TP 8, CP 1, PP 16, DP 64 on 8,192 H100s,
    /// sequence 8192, 16M tokens a step) fits an 80 GB H100 (81,559 MiB) under this memory model, with micro-batch 1.
    func testLlama3405BLayoutFits() throws {
        var r = EstimateRequest(shape: Self.llama405, hardware: .h100_sxm_80gb, batchSequences: 2048)
        r.devices = 8192
        r.constraints = LayoutConstraints(tensorParallel: 8, pipelineParallel: 16, microBatch: 1)
        let e = try Estimate.make(r)
        XCTAssertEqual(e.layout.dataParallel, 64)
        XCTAssertEqual(e.layout.gradAccum, 32)
        XCTAssertEqual(e.tokensPerStep, 16_777_216)
        XCTAssertTrue(e.chosen.fits)
        XCTAssertLessThanOrEqual(e.chosen.memory.total, 0.9 * Hardware.h100_sxm_80gb.memoryBytes)
        // The search's fastest (docs/planner.md): ZeRO-1, full recomputation, interleaved with v = 8, 53.7 GiB.
        XCTAssertEqual(e.layout.zeroStage, 1)
        XCTAssertEqual(e.layout.recompute, .full)
        XCTAssertEqual(e.layout.interleave, 8)
        XCTAssertEqual(e.chosen.memory.total / 0x1p30, 53.7, accuracy: 0.05)
    }

    /// Context parallelism: Llama 3's 128K stage (Dubey et al. 2024, Table 4: TP 8, CP 16, PP 16, DP 8 on 16,384
    /// H100s, sequence 131,072, 16M tokens a step) puts 8,192 tokens of each sequence on a device, so a device holds
    /// exactly the activations of the 8K stage on the same GPUs (TP 8, PP 16, DP 128), and ZeRO shards over the same
    /// 128 ranks (d·c). The weights stay whole on each context-parallel rank; the compute is the same tokens' but with
    /// sixteen times the attention a token; the ring's sends hide behind that attention. Refused: a c that does not
    /// divide half the sequence, and any on a CPU.
    func testContextParallelismSplitsTheSequence() throws {
        var long = Self.llama405
        long.seqLen = 131_072
        func estimate(_ shape: ModelShape, batch: Int, c: Int) throws -> Estimate {
            var r = EstimateRequest(shape: shape, hardware: .h100_sxm_80gb, batchSequences: batch)
            r.devices = 16384
            var k = LayoutConstraints(zeroStage: 3, tensorParallel: 8, pipelineParallel: 16, recompute: .selective,
                                      microBatch: 1, interleave: 8)
            k.balancedEnds = true
            k.overlapsTensorParallel = true
            k.contextParallel = c
            r.constraints = k
            return try Estimate.make(r)
        }
        let e128k = try estimate(long, batch: 128, c: 16)
        let e8k = try estimate(Self.llama405, batch: 2048, c: 1)
        XCTAssertEqual(e128k.layout.dataParallel, 8)
        XCTAssertEqual(e128k.layout.contextParallel, 16)
        XCTAssertEqual(e128k.layout.devices, 16384)
        XCTAssertEqual(e128k.layout.gradAccum, 16)
        XCTAssertEqual(e128k.tokensPerStep, e8k.tokensPerStep)
        XCTAssertEqual(e128k.chosen.memory.activations, e8k.chosen.memory.activations, accuracy: 1)
        XCTAssertEqual(e128k.chosen.memory.optimizer, e8k.chosen.memory.optimizer, accuracy: 1)
        XCTAssertTrue(e128k.chosen.fits)
        XCTAssertEqual(e128k.chosen.step.contextParallel, 0, "the ring hides behind attention at 128K")
        // The same tokens, more attention each: the hardware FLOPs a token (6N' + 12·L·d·T and selective
        // recomputation's third of the attention) at T = 128K against 8K.
        let ratio = LayoutModel.hardwareFlopsPerToken(long, recompute: .selective)
            / LayoutModel.hardwareFlopsPerToken(Self.llama405, recompute: .selective)
        XCTAssertEqual(e128k.chosen.step.compute / e8k.chosen.step.compute, ratio, accuracy: 0.01 * ratio)
        XCTAssertEqual(e128k.modelFlopsUtilization, 0.321, accuracy: 0.001)
        // A short sequence over many ranks leaves little attention to hide the ring behind: exposed.
        var short = Self.llama405
        short.seqLen = 2048
        let exposed = try estimate(short, batch: 512, c: 16)
        // By hand: d = 16384/(8·16·16) = 8 ranks of 64 micro-batches; 8 layers a middle stage; each layer sends a K and
        // V chunk of 128 tokens × 2 × 1024/8 values × 2 bytes, 4 × 15 times with selective recomputation, across nodes
        // (t·c = 128 GPUs); hidden behind attention's share of the compute.
        let step = exposed.chosen.step
        XCTAssertEqual(exposed.layout.gradAccum, 64)
        let ring = 64.0 * 8 * 60 * (2 * 128 * 2 * 1024 / 8) / Hardware.h100_sxm_80gb.interNodeBandwidth
        let attention = short.attentionFlopsPerToken() * 4 / 3 / LayoutModel.hardwareFlopsPerToken(short, recompute: .selective)
        XCTAssertGreaterThan(ring, step.compute * attention)
        XCTAssertEqual(step.contextParallel, ring - step.compute * attention, accuracy: 1e-9 * ring)
        // Data-parallel gradients are reduced over d·c = 128 ranks (ZeRO-3 shards over them too).
        XCTAssertEqual(exposed.chosen.memory.optimizer, 12 * LayoutModel.stageParamsOnDevice(short, exposed.layout) / 128,
                       accuracy: 1)
        XCTAssertThrowsError(try estimate(Self.llama405, batch: 2048, c: 3)) { error in
            XCTAssertEqual(error as? EstimateError, .layout(.contextParallelInvalid(3, seqLen: 8192)))
        }
        // Devices that c does not divide (with t and p free) are named as such, not as an indivisible batch.
        var r = EstimateRequest(shape: Self.llama405, hardware: .h100_sxm_80gb, batchSequences: 2048)
        r.devices = 12
        r.constraints.contextParallel = 8
        XCTAssertThrowsError(try Estimate.make(r)) { error in
            XCTAssertEqual(error as? EstimateError, .layout(.devicesNotFactored(devices: 12, tensorParallel: 1, pipelineParallel: 1)))
        }
        // GPUs only: gpt-train on a CPU has no context parallelism.
        var cpu = EstimateRequest(shape: ModelShape(nLayer: 2, nHead: 2, dModel: 64, dFF: 256, seqLen: 64, vocabSize: 128,
                                                    bias: false),
                                  hardware: .cpu(memoryBytes: 8e9, fp32Flops: 1e11, bf16Flops: nil, source: "test"),
                                  batchSequences: 8)
        cpu.devices = 2
        cpu.constraints.contextParallel = 2
        XCTAssertThrowsError(try Estimate.make(cpu)) { error in
            XCTAssertEqual(error as? EstimateError, .layout(.contextParallelInvalid(2, seqLen: 64)))
        }
    }

    /// The interleaved schedule gives each of a stage's `v` virtual stages the same layers: a `v` that does not divide
    /// a stage's layers (126 layers on 16 stages: 8 a stage) is refused, not timed as if Megatron-LM could run it.
    func testInterleaveMustDivideAStagesLayers() throws {
        var r = EstimateRequest(shape: Self.llama405, hardware: .h100_sxm_80gb, batchSequences: 2048)
        r.devices = 8192
        r.constraints = LayoutConstraints(tensorParallel: 8, pipelineParallel: 16, microBatch: 1)
        r.constraints.interleave = 16
        XCTAssertThrowsError(try Estimate.make(r)) { error in
            XCTAssertEqual(error as? EstimateError, .layout(.interleaveInvalid(16, stageLayers: 8)))
        }
        r.constraints.interleave = 4
        XCTAssertEqual(try Estimate.make(r).layout.interleave, 4)
    }

    /// MFU counts the model's FLOPs, HFU the hardware's: full recomputation runs one more forward (HFU = 4/3 MFU);
    /// throughput is the step's tokens over its time and devices.
    func testUtilisationsAndThroughput() throws {
        let gpt3 = ModelShape(nLayer: 96, nHead: 96, dModel: 12288, dFF: 4 * 12288, seqLen: 2048, vocabSize: 51200,
                              bias: true)
        var r = EstimateRequest(shape: gpt3, hardware: .a100_80gb, batchSequences: 1536)
        r.devices = 1536
        r.constraints = LayoutConstraints(zeroStage: 1, tensorParallel: 8, pipelineParallel: 8, recompute: .full,
                                          microBatch: 1, interleave: 1)
        r.trainingTokens = 300e9
        r.pricePerDeviceHour = 2
        let e = try Estimate.make(r)
        XCTAssertEqual(e.layout, Layout(dataParallel: 24, tensorParallel: 8, pipelineParallel: 8, zeroStage: 1,
                                        recompute: .full, microBatch: 1, gradAccum: 64))
        XCTAssertEqual(e.hardwareFlopsUtilization / e.modelFlopsUtilization, 4.0 / 3, accuracy: 1e-12)
        XCTAssertEqual(e.tokensPerSecondPerDevice, 1536 * 2048 / e.stepSeconds / 1536, accuracy: 1e-9)
        XCTAssertEqual(e.modelFlopsUtilization,
                       gpt3.flopsPerTokenWithAttention() * e.tokensPerSecondPerDevice / 312e12, accuracy: 1e-12)
        XCTAssertEqual(e.steps, Int((300e9 / (1536 * 2048)).rounded(.up)))
        XCTAssertEqual(e.cost!, e.deviceHours! * 2, accuracy: 1e-6)
        // The same layout as the layout search evaluates it.
        let direct = LayoutModel.estimate(shape: gpt3, layout: e.layout, hardware: .a100_80gb, mfu: 0.4,
                                          timeModel: StepTimeModel.calibrated(for: .a100_80gb))
        XCTAssertEqual(direct, e.chosen)
    }

    func testSearchHonoursTheMicroBatchAndFindsTheFewestDevices() throws {
        let l8 = ModelShape(nLayer: 32, nHead: 32, dModel: 4096, dFF: 14336, seqLen: 8192, vocabSize: 128_256,
                            bias: false, family: .llama, nKVHead: 8)
        var r = EstimateRequest(shape: l8, hardware: .h100_sxm_80gb, batchSequences: 512)
        r.constraints.microBatch = 2
        let e = try Estimate.make(r)
        XCTAssertFalse(e.devicesGiven)
        XCTAssertEqual(e.layout.microBatch, 2)
        XCTAssertTrue(e.alternatives.allSatisfy { $0.layout.microBatch == 2 })
        // The count before it does not fit (8B needs more than one H100 for weights, gradients and moments).
        let counts = LayoutModel.deviceCounts(hardware: .h100_sxm_80gb)
        let index = try XCTUnwrap(counts.firstIndex(of: e.devices))
        XCTAssertGreaterThan(index, 0)
        var fewer = r
        fewer.devices = counts[index - 1]
        XCTAssertThrowsError(try Estimate.make(fewer))
        // A bad fixed dimension is an error naming it.
        var bad = r
        bad.constraints.tensorParallel = 16
        XCTAssertThrowsError(try Estimate.make(bad)) {
            guard case .layout(.tensorParallelInvalid(16, _, _)) = $0 as? EstimateError else { return XCTFail("\($0)") }
        }
    }

    /// Hugging Face configs as published (GPT-2's and Llama 3 8B's config.json).
    func testHuggingFaceConfigs() throws {
        let llama = """
        {"architectures": ["LlamaForCausalLM"], "attention_bias": false, "hidden_act": "silu", "hidden_size": 4096,
         "intermediate_size": 14336, "max_position_embeddings": 8192, "model_type": "llama",
         "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 8, "rms_norm_eps": 1e-05,
         "rope_scaling": null, "rope_theta": 500000.0, "tie_word_embeddings": false, "vocab_size": 128256}
        """
        let l8 = try ModelShape.fromHuggingFaceConfig(Data(llama.utf8))
        XCTAssertEqual(l8.parameterCount.total, 8_030_261_248)
        XCTAssertEqual(l8.family, .llama)
        XCTAssertEqual(l8.nKVHead, 8)
        XCTAssertEqual(l8.ropeTheta, 500_000)
        XCTAssertEqual(l8.seqLen, 8192)
        XCTAssertEqual(try ModelShape.fromHuggingFaceConfig(Data(llama.utf8), seqLen: 4096).seqLen, 4096)
        let gpt2 = """
        {"activation_function": "gelu_new", "architectures": ["GPT2LMHeadModel"], "layer_norm_epsilon": 1e-05,
         "model_type": "gpt2", "n_ctx": 1024, "n_embd": 768, "n_head": 12, "n_layer": 12, "n_positions": 1024,
         "vocab_size": 50257}
        """
        XCTAssertEqual(try ModelShape.fromHuggingFaceConfig(Data(gpt2.utf8)).parameterCount.total, 124_439_808)
        XCTAssertThrowsError(try ModelShape.fromHuggingFaceConfig(Data("{\"model_type\": \"bert\"}".utf8))) {
            XCTAssertEqual($0 as? HuggingFaceConfigError, .unsupportedModelType("bert"))
        }
        XCTAssertThrowsError(try ModelShape.fromHuggingFaceConfig(Data(llama.replacingOccurrences(of: "\"hidden_size\": 4096,", with: "").utf8))) {
            XCTAssertEqual($0 as? HuggingFaceConfigError, .missing("hidden_size"))
        }
    }

    /// The interleaved schedule (Narayanan et al. 2021 §2.2.2): the bubble is (p − 1)/(v·m) of the compute, and the
    /// first device holds (1 + (p − 1)/(p·v)) × p micro-batches' worth of its layers (Megatron-LM's warm-up of
    /// 2(p − 1) + (v − 1)p chunks of L/(pv) layers).
    func testInterleavingDividesTheBubbleAndCostsActivations() {
        let gpt3 = ModelShape(nLayer: 96, nHead: 96, dModel: 12288, dFF: 4 * 12288, seqLen: 2048, vocabSize: 51200,
                              bias: true)
        let plain = Layout(dataParallel: 24, tensorParallel: 8, pipelineParallel: 8, zeroStage: 1, recompute: .selective,
                           microBatch: 1, gradAccum: 64)
        var interleaved = plain
        interleaved.interleave = 3
        let model = StepTimeModel.calibrated(for: .a100_80gb)
        let a = LayoutModel.stepTime(shape: gpt3, layout: plain, hardware: .a100_80gb, mfu: 0.4, timeModel: model)
        let b = LayoutModel.stepTime(shape: gpt3, layout: interleaved, hardware: .a100_80gb, mfu: 0.4, timeModel: model)
        XCTAssertEqual(a.compute, b.compute)
        XCTAssertEqual(a.bubble, a.compute * 7 / 64, accuracy: 1e-9 * a.compute)
        XCTAssertEqual(b.bubble, a.bubble / 3, accuracy: 1e-9 * a.compute)
        let perLayer = MemoryModel.activationBytesPerLayer(gpt3, b: 1, t: 8, recompute: .selective)
        let ma = LayoutModel.memory(shape: gpt3, layout: plain, hardware: .a100_80gb)
        let mb = LayoutModel.memory(shape: gpt3, layout: interleaved, hardware: .a100_80gb)
        XCTAssertEqual(mb.activations - ma.activations, perLayer * 12 * 8 * (7.0 / 24), accuracy: 1)
        // The estimate searches v; the plan's search keeps 1F1B.
        var r = EstimateRequest(shape: gpt3, hardware: .a100_80gb, batchSequences: 1536)
        r.devices = 1536
        r.constraints = LayoutConstraints(zeroStage: 1, tensorParallel: 8, pipelineParallel: 8, recompute: .selective,
                                          microBatch: 1)
        let e = try! Estimate.make(r)
        XCTAssertGreaterThan(e.layout.interleave, 1)
        XCTAssertEqual(12 % e.layout.interleave, 0, "v divides the 12 layers of a stage")
    }
}
