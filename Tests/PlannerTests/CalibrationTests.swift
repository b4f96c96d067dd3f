import GPTShape
import Planner
import XCTest

/// The step-time model against published runs: each run's shape, hardware, layout, batch and recomputation, and
/// its published model FLOPs utilisation (MFU: 6N' + 12·L·d·T model FLOPs a token, attention over the full T×T,
/// no recomputation counted; the convention of all three sources). docs/planner.md shows the same table.
final class CalibrationTests: XCTestCase {
    struct Run {
        var name: String
        var source: String
        var shape: ModelShape
        var hardware: Hardware
        var layout: Layout
        var publishedMFU: Double
        /// The figure as the source gives it, when it is not an MFU (e.g. hardware TFLOP/s with recomputation).
        var published = ""
    }

    /// MosaicML's MPT shapes (llm-foundry scripts/train/yamls/pretrain/mpt-*.yaml): d_model, n_layers, n_heads;
    /// GPT blocks with d_ff = 4·d, no biases, ALiBi (no position table), vocabulary 50368, tied head.
    static func mpt(_ size: String, seq: Int) -> ModelShape {
        let (d, l, h) = ["125m": (768, 12, 12), "350m": (1024, 24, 16), "760m": (1536, 24, 12), "1b": (2048, 24, 16),
                         "3b": (2560, 32, 20), "7b": (4096, 32, 32), "13b": (5120, 40, 40), "30b": (7168, 48, 64),
                         "70b": (8192, 80, 64)][size]!
        var s = ModelShape(nLayer: l, nHead: h, dModel: d, dFF: 4 * d, seqLen: seq, vocabSize: 50368, bias: false)
        s.family = .gpt2
        return s
    }

    /// llm-foundry scripts/train/benchmarking/README.md, "A100 80GB" and "H100 80GB BF16" tables: FSDP FULL_SHARD
    /// (ZeRO-3) over the GPUs, micro-batch, gradient accumulation, activation checkpointing (full recomputation)
    /// as listed, and the MFU column.
    static func mptRun(_ size: String, seq: Int, gpus: Int, _ hardware: Hardware, micro: Int, accum: Int,
                       checkpointing: Bool, mfu: Double) -> Run {
        Run(name: "MPT-\(size) T=\(seq) \(gpus)×\(hardware.name) micro \(micro)\(checkpointing ? " full recompute" : "")",
            source: "MosaicML llm-foundry benchmarking README (\(hardware.name == "a100-80gb" ? "A100 80GB" : "H100 80GB BF16") table)",
            shape: mpt(size, seq: seq), hardware: hardware,
            layout: Layout(dataParallel: gpus, zeroStage: 3, recompute: checkpointing ? .full : .none, microBatch: micro,
                           gradAccum: accum),
            publishedMFU: mfu / 100)
    }

    /// Korthikanti et al. 2022, Table 5 (and the Megatron-LM README's MFU/HFU table): GPT models on A100s with
    /// tensor parallelism 8 and sequence parallelism, selective recomputation, micro-batch 1, data parallelism 1,
    /// sequence 2048, vocabulary 51200; pipeline stages and batch as in their Table 3.
    static func megatron(_ name: String, d: Int, layers: Int, heads: Int, pipeline: Int, batch: Int, mfu: Double) -> Run {
        Run(name: "Megatron GPT \(name), t8 p\(pipeline), batch \(batch)",
            source: "Korthikanti et al. 2022, Tables 3 and 5; Megatron-LM README",
            shape: ModelShape(nLayer: layers, nHead: heads, dModel: d, dFF: 4 * d, seqLen: 2048, vocabSize: 51200,
                              bias: true),
            hardware: .a100_80gb,
            layout: Layout(dataParallel: 1, tensorParallel: 8, pipelineParallel: pipeline, recompute: .selective,
                           microBatch: 1, gradAccum: batch),
            publishedMFU: mfu / 100)
    }

    static let runs: [Run] = [
        mptRun("125m", seq: 2048, gpus: 8, .a100_80gb, micro: 40, accum: 2, checkpointing: false, mfu: 44.79),
        mptRun("350m", seq: 2048, gpus: 8, .a100_80gb, micro: 32, accum: 2, checkpointing: false, mfu: 51.62),
        mptRun("760m", seq: 2048, gpus: 8, .a100_80gb, micro: 24, accum: 2, checkpointing: false, mfu: 56.85),
        mptRun("1b", seq: 2048, gpus: 8, .a100_80gb, micro: 14, accum: 4, checkpointing: false, mfu: 59.86),
        mptRun("3b", seq: 2048, gpus: 8, .a100_80gb, micro: 10, accum: 2, checkpointing: false, mfu: 62.11),
        mptRun("7b", seq: 2048, gpus: 8, .a100_80gb, micro: 6, accum: 2, checkpointing: false, mfu: 64.23),
        mptRun("13b", seq: 2048, gpus: 8, .a100_80gb, micro: 2, accum: 3, checkpointing: false, mfu: 59.57),
        mptRun("30b", seq: 2048, gpus: 8, .a100_80gb, micro: 3, accum: 21, checkpointing: true, mfu: 55.3),
        mptRun("70b", seq: 2048, gpus: 64, .a100_80gb, micro: 8, accum: 4, checkpointing: true, mfu: 53.33),
        mptRun("7b", seq: 8192, gpus: 8, .a100_80gb, micro: 8, accum: 2, checkpointing: true, mfu: 54.47),
        mptRun("13b", seq: 8192, gpus: 8, .a100_80gb, micro: 5, accum: 3, checkpointing: true, mfu: 56.07),
        mptRun("760m", seq: 2048, gpus: 16, .h100_sxm_80gb, micro: 24, accum: 1, checkpointing: false, mfu: 37.89),
        mptRun("1b", seq: 2048, gpus: 8, .h100_sxm_80gb, micro: 14, accum: 1, checkpointing: false, mfu: 41.82),
        mptRun("3b", seq: 2048, gpus: 16, .h100_sxm_80gb, micro: 10, accum: 3, checkpointing: false, mfu: 43.73),
        mptRun("7b", seq: 2048, gpus: 8, .h100_sxm_80gb, micro: 6, accum: 1, checkpointing: false, mfu: 46.44),
        mptRun("13b", seq: 2048, gpus: 8, .h100_sxm_80gb, micro: 2, accum: 1, checkpointing: false, mfu: 39.79),
        mptRun("30b", seq: 2048, gpus: 8, .h100_sxm_80gb, micro: 3, accum: 21, checkpointing: true, mfu: 38.11),
        mptRun("70b", seq: 2048, gpus: 64, .h100_sxm_80gb, micro: 8, accum: 4, checkpointing: true, mfu: 42.57),
        mptRun("7b", seq: 8192, gpus: 8, .h100_sxm_80gb, micro: 8, accum: 2, checkpointing: true, mfu: 37.14),
        mptRun("13b", seq: 4096, gpus: 8, .h100_sxm_80gb, micro: 10, accum: 3, checkpointing: true, mfu: 41.6),
        megatron("22B", d: 6144, layers: 48, heads: 64, pipeline: 1, batch: 4, mfu: 41.5),
        megatron("175B", d: 12288, layers: 96, heads: 96, pipeline: 8, batch: 64, mfu: 51.4),
        megatron("530B", d: 20480, layers: 105, heads: 128, pipeline: 35, batch: 280, mfu: 56.0),
        megatron("1T", d: 25600, layers: 128, heads: 160, pipeline: 64, batch: 512, mfu: 56.3),
    ]

    // MARK: Held-out runs

    /// Megatron-LM's own FLOP count (Narayanan et al. 2021, eq. 3), per token: 24·f·l·h²·(1 + s/(6h) + V/(16·l·h)),
    /// f = 4 with activation recomputation (the forward counted twice) and 3 without. Megatron-LM, Megatron-DeepSpeed
    /// (BLOOM, MT-NLG) and their descendants print their TFLOP/s with it, so a published "TFLOP/s per GPU" of theirs
    /// is hardware FLOPs when f = 4.
    static func megatronEq3FlopsPerToken(_ s: ModelShape, recompute: Bool) -> Double {
        let (l, h, t, v) = (Double(s.nLayer), Double(s.dModel), Double(s.seqLen), Double(s.vocabSize))
        return 24 * (recompute ? 4 : 3) * l * h * h * (1 + t / (6 * h) + v / (16 * l * h))
    }

    /// Our MFU (model FLOPs 6N' + 12·L·d·T a token, recomputation not counted) of a run published as `tflops`
    /// TFLOP/s per GPU by eq. 3: the step time is eq. 3's FLOPs over the rate, so MFU = rate × ours / eq. 3 / peak.
    static func mfu(eq3TFLOPs tflops: Double, _ shape: ModelShape, recompute: Bool, peak: Double) -> Double {
        tflops * 1e12 * shape.flopsPerTokenWithAttention() / megatronEq3FlopsPerToken(shape, recompute: recompute) / peak
    }

    /// A GPT of Narayanan et al.'s Table 1/2: d_ff = 4h, biases, vocabulary 51200, sequence 2048.
    static func narayananShape(layers: Int, d: Int, heads: Int) -> ModelShape {
        ModelShape(nLayer: layers, nHead: heads, dModel: d, dFF: 4 * d, seqLen: 2048, vocabSize: 51200, bias: true)
    }

    /// Narayanan et al. 2021, Table 1 (weak scaling on Selene's A100 80GB, PTD-P with activation recomputation):
    /// t, p, GPUs and batch as listed, d = GPUs/(t·p); the micro-batch is not in Table 1 and is taken as 1, as in
    /// their Table 2's PTD-P runs; §5.1 says the interleaved schedule was used, with v not given: taken as 1F1B.
    /// Megatron-LM of 2021: no ZeRO (stage 0).
    static func narayananTable1(_ size: String, layers: Int, d: Int, heads: Int, t: Int, p: Int, gpus: Int,
                                batch: Int, tflops: Double) -> Run {
        let shape = narayananShape(layers: layers, d: d, heads: heads)
        let dp = gpus / (t * p)
        return Run(name: "Megatron GPT \(size), t\(t) p\(p) d\(dp), batch \(batch)",
                   source: "Narayanan et al. 2021, Table 1", shape: shape, hardware: .a100_80gb,
                   layout: Layout(dataParallel: dp, tensorParallel: t, pipelineParallel: p, recompute: .full,
                                  microBatch: 1, gradAccum: batch / dp),
                   publishedMFU: mfu(eq3TFLOPs: tflops, shape, recompute: true, peak: 312e12),
                   published: "\(Int(tflops)) TFLOP/s (eq. 3, recomputation counted)")
    }

    /// Narayanan et al. 2021, Table 2: GPT-3 175B (96 layers, h 12288, 96 heads) and 530B (105 layers, h 20480,
    /// 128 heads). PTD-P: model-parallel size 96 = t 8 × p 12 and 280 = t 8 × p 35, micro-batch 1; ZeRO-3 (DeepSpeed,
    /// no model parallelism; the rows with model-parallel size 1), micro-batch as listed. Both with recomputation.
    static func narayananTable2(_ size: String, zero3: Bool, gpus: Int, batch: Int, micro: Int, tflops: Double) -> Run {
        let big = size == "530B"
        let shape = big ? narayananShape(layers: 105, d: 20480, heads: 128) : narayananShape(layers: 96, d: 12288, heads: 96)
        let (t, p) = zero3 ? (1, 1) : (8, big ? 35 : 12)
        let dp = gpus / (t * p)
        return Run(name: "\(size) \(zero3 ? "ZeRO-3" : "PTD-P t\(t) p\(p)") on \(gpus), micro \(micro), batch \(batch)",
                   source: "Narayanan et al. 2021, Table 2", shape: shape, hardware: .a100_80gb,
                   layout: Layout(dataParallel: dp, tensorParallel: t, pipelineParallel: p, zeroStage: zero3 ? 3 : 0,
                                  recompute: .full, microBatch: micro, gradAccum: batch / (dp * micro)),
                   publishedMFU: mfu(eq3TFLOPs: tflops, shape, recompute: true, peak: 312e12),
                   published: "\(Int(tflops)) TFLOP/s (eq. 3, recomputation counted)")
    }

    /// BLOOM-176B (BigScience, bigscience-workshop/bigscience train/tr11-176B-ml/tr11-176B-ml.slurm and README):
    /// 70 layers, h 14336, 112 heads, sequence 2048, vocabulary padded to 250880, ALiBi, tied head; 48 nodes of 8
    /// A100 80GB, TP 4, PP 12, DP 8, micro-batch 2, global batch 2048, --checkpoint-activations (full), bf16 with
    /// DeepSpeed's ZeRO-1-equivalent optimizer sharding; "training throughput: about 150 TFLOPs" (BigScience's 176B
    /// model page; stas00's ml-engineering notes: 150 TFLOPs once the batch reached 2048), Megatron-DeepSpeed's
    /// eq. 3 count with f = 4. Jean Zay's nodes have four 100 Gb/s Omni-Path links (6.25 GB/s a GPU), not a DGX's eight 200 Gb/s.
    static let bloom: Run = {
        let shape = ModelShape(nLayer: 70, nHead: 112, dModel: 14336, dFF: 4 * 14336, seqLen: 2048, vocabSize: 250_880,
                               bias: true)
        var jeanZay = Hardware.a100_80gb
        jeanZay.interNodeBandwidth = 4 * 100e9 / 8 / 8
        return Run(name: "BLOOM-176B, t4 p12 d8, micro 2, batch 2048",
                   source: "BigScience tr11-176B-ml.slurm; BigScience's 176B model page (\"about 150 TFLOPs\")",
                   shape: shape, hardware: jeanZay,
                   layout: Layout(dataParallel: 8, tensorParallel: 4, pipelineParallel: 12, zeroStage: 1,
                                  recompute: .full, microBatch: 2, gradAccum: 128),
                   publishedMFU: mfu(eq3TFLOPs: 150, shape, recompute: true, peak: 312e12),
                   published: "~150 TFLOP/s (eq. 3, recomputation counted)")
    }()

    /// MT-NLG 530B (Smith et al. 2022, arXiv:2201.11990, the system-throughput table): 105 layers, h 20480, 128 heads, sequence 2048,
    /// vocabulary 51200 (GPT-2's, padded); 280 DGX A100 nodes = 2240 GPUs, TP 8, PP 35, DP 8, batch 1920, micro-batch
    /// 1, recomputation, DeepSpeed ZeRO-1; 60.1 s an iteration (126 TFLOP/s a GPU by eq. 3). The MFU is taken from
    /// the iteration time directly.
    static let mtnlg: Run = {
        let shape = narayananShape(layers: 105, d: 20480, heads: 128)
        let mfu = 1920 * 2048 * shape.flopsPerTokenWithAttention() / (2240 * 312e12 * 60.1)
        return Run(name: "MT-NLG 530B, t8 p35 d8, batch 1920", source: "Smith et al. 2022, throughput table (280 nodes)",
                   shape: shape, hardware: .a100_80gb,
                   layout: Layout(dataParallel: 8, tensorParallel: 8, pipelineParallel: 35, zeroStage: 1,
                                  recompute: .full, microBatch: 1, gradAccum: 240),
                   publishedMFU: mfu, published: "60.1 s a step (126 TFLOP/s, eq. 3)")
    }()

    /// Published runs the step-time model was NOT fitted on: its constants were left as the table above fitted them.
    static let heldOut: [Run] = [
        narayananTable1("1.7B", layers: 24, d: 2304, heads: 24, t: 1, p: 1, gpus: 32, batch: 512, tflops: 137),
        narayananTable1("3.6B", layers: 30, d: 3072, heads: 32, t: 2, p: 1, gpus: 64, batch: 512, tflops: 138),
        narayananTable1("7.5B", layers: 36, d: 4096, heads: 32, t: 4, p: 1, gpus: 128, batch: 512, tflops: 142),
        narayananTable1("18.4B", layers: 40, d: 6144, heads: 48, t: 8, p: 1, gpus: 256, batch: 1024, tflops: 135),
        narayananTable1("39.1B", layers: 48, d: 8192, heads: 64, t: 8, p: 2, gpus: 512, batch: 1536, tflops: 138),
        narayananTable1("76.1B", layers: 60, d: 10240, heads: 80, t: 8, p: 4, gpus: 1024, batch: 1792, tflops: 140),
        narayananTable1("145.6B", layers: 80, d: 12288, heads: 96, t: 8, p: 8, gpus: 1536, batch: 2304, tflops: 148),
        narayananTable1("310.1B", layers: 96, d: 16384, heads: 128, t: 8, p: 16, gpus: 1920, batch: 2160, tflops: 155),
        narayananTable1("529.6B", layers: 105, d: 20480, heads: 128, t: 8, p: 35, gpus: 2520, batch: 2520, tflops: 163),
        narayananTable1("1008.0B", layers: 128, d: 25600, heads: 160, t: 8, p: 64, gpus: 3072, batch: 3072, tflops: 163),
        narayananTable2("175B", zero3: false, gpus: 384, batch: 1536, micro: 1, tflops: 153),
        narayananTable2("175B", zero3: false, gpus: 768, batch: 1536, micro: 1, tflops: 149),
        narayananTable2("175B", zero3: false, gpus: 1536, batch: 1536, micro: 1, tflops: 141),
        narayananTable2("530B", zero3: false, gpus: 560, batch: 2240, micro: 1, tflops: 171),
        narayananTable2("530B", zero3: false, gpus: 1120, batch: 2240, micro: 1, tflops: 167),
        narayananTable2("530B", zero3: false, gpus: 2240, batch: 2240, micro: 1, tflops: 159),
        narayananTable2("175B", zero3: true, gpus: 384, batch: 1536, micro: 4, tflops: 144),
        narayananTable2("175B", zero3: true, gpus: 1536, batch: 1536, micro: 1, tflops: 44),
        narayananTable2("530B", zero3: true, gpus: 640, batch: 2560, micro: 4, tflops: 138),
        narayananTable2("530B", zero3: true, gpus: 2240, batch: 2240, micro: 1, tflops: 48),
        bloom,
        mtnlg,
    ]

    /// The held-out runs, reported apart from the fitted ones (docs/planner.md, "Held-out runs").
    func testHeldOutRuns() {
        var table = ""
        var errors: [Double] = []
        for r in Self.heldOut {
            let predicted = Self.predictedMFU(r)
            let error = predicted / r.publishedMFU - 1
            errors.append(error)
            table += "| \(r.name) | \(r.source) | \(r.published) | \(String(format: "%.1f%%", 100 * r.publishedMFU)) | "
                + "\(String(format: "%.1f%%", 100 * predicted)) | \(String(format: "%+.1f%%", 100 * error)) |\n"
        }
        print(table)
        let within15 = errors.filter { abs($0) <= 0.15 }.count, within30 = errors.filter { abs($0) <= 0.30 }.count
        print("held out: \(within15) of \(errors.count) within ±15%, \(within30) within ±30%")
        // What docs/planner.md reports, so that a change to the model that loses any of it fails here: 14 of the 22
        // within ±15%, 16 within ±30%. The misses: DeepSpeed's ZeRO-3 of 2021 at 384-2240 GPUs (+45% to +67%: the
        // model overlaps ZeRO-3's gathers with compute, as FSDP's prefetch does; those runs look unoverlapped),
        // MT-NLG (+30%: DeepSpeed's pipeline engine, where Megatron's own at the same layout is +4.7%) and the
        // smallest Megatron run without tensor parallelism (1.7B, +31%).
        XCTAssertEqual(errors.count, 22)
        XCTAssertGreaterThanOrEqual(within15, 14, table)
        XCTAssertGreaterThanOrEqual(within30, 16, table)
        // The PTD-P runs (Megatron's own engine, the layouts the planner searches) all within ±15%.
        for (r, e) in zip(Self.heldOut, errors) where r.layout.pipelineParallel > 1 && r.source.hasPrefix("Narayanan") {
            XCTAssertLessThanOrEqual(abs(e), 0.15, r.name)
        }
    }

    // MARK: Llama 3 405B

    /// Llama 3 405B (Dubey et al. 2024, Table 3 and the config.json: 126 layers, d 16384, 128 heads, 8 KV heads,
    /// d_ff 53248, vocabulary 128256, untied head).
    static let llama405 = ModelShape(nLayer: 126, nHead: 128, dModel: 16384, dFF: 53248, seqLen: 8192,
                                     vocabSize: 128_256, bias: false, family: .llama, nKVHead: 8, ropeTheta: 500_000)

    /// Table 4's 8K-context rows: TP 8, CP 1, PP 16, DP 64 on 8,192 H100s (430 TFLOP/s a GPU, 43% BF16 MFU) and DP
    /// 128 on 16,384 (400 TFLOP/s, 41%); 16M tokens a step = 2048 sequences, micro-batch 1. §3.3.2: the interleaved
    /// schedule, one layer fewer on the first and last stages, and "pre-train on sequences of 8K tokens without
    /// activation checkpointing" (with flash attention, our selective recomputation's memory). The tensor-parallel
    /// collectives are taken as overlapped, as Megatron-core with Transformer Engine does (`--tp-comm-overlap`).
    static func llama405Estimate(gpus: Int, constraints extra: (inout LayoutConstraints) -> Void = { _ in }) throws -> Estimate {
        var r = EstimateRequest(shape: llama405, hardware: .h100_sxm_80gb, batchSequences: 2048)
        r.devices = gpus
        var c = LayoutConstraints(tensorParallel: 8, pipelineParallel: 16, microBatch: 1)
        c.balancedEnds = true
        c.overlapsTensorParallel = true
        extra(&c)
        r.constraints = c
        return try Estimate.make(r)
    }

    func testLlama3405B() throws {
        let published = [8192: 430e12 / 989e12, 16384: 400e12 / 989e12]
        // DP 128: the layout Meta describes fits (ZeRO-3, selective, v = 8: 16 micro-batches a rank, so Megatron's
        // interleaved schedule runs all 128 chunk forwards before the first backward on every stage) and is
        // predicted within ±10%.
        let wide = try Self.llama405Estimate(gpus: 16384)
        XCTAssertEqual(wide.layout, Layout(dataParallel: 128, tensorParallel: 8, pipelineParallel: 16, zeroStage: 3,
                                           recompute: .selective, microBatch: 1, gradAccum: 16, interleave: 8,
                                           balancedEnds: true, overlapsTensorParallel: true))
        let wideError = wide.modelFlopsUtilization / published[16384]! - 1
        print("Llama 3 405B on 16384: \(wide.modelFlopsUtilization) predicted, error \(wideError), "
              + "\(wide.chosen.memory.total / 0x1p30) GiB")
        XCTAssertLessThanOrEqual(abs(wideError), 0.10)
        // DP 64: 32 micro-batches a rank, so the second stage warms up with 2(p − 2) + (v − 1)p + 1 = 141 chunks of one
        // layer: 69.9 GiB of activations, 72.7 GiB in all, over the 71.7 usable (90% of 81,559 MiB); the fastest layout
        // that fits recomputes everything.
        let narrow = try Self.llama405Estimate(gpus: 8192)
        XCTAssertEqual(narrow.layout.recompute, .full)
        let narrowError = narrow.modelFlopsUtilization / published[8192]! - 1
        print("Llama 3 405B on 8192: \(narrow.modelFlopsUtilization) predicted (\(narrow.layout)), error \(narrowError)")
        XCTAssertEqual(narrowError, -0.30, accuracy: 0.02)
        // ZeRO-3 with selective recomputation fits on 8,192 with plain 1F1B (62.3 GiB) but its bubble, 15 stages over 32
        // micro-batches, makes it slower than the search's choice: 28.6%.
        let plain = try Self.llama405Estimate(gpus: 8192) { $0.zeroStage = 3; $0.recompute = .selective; $0.interleave = 1 }
        XCTAssertTrue(plain.chosen.fits)
        XCTAssertEqual(plain.chosen.memory.total / 0x1p30, 62.3, accuracy: 0.05)
        XCTAssertEqual(plain.modelFlopsUtilization, 0.286, accuracy: 0.001)
        XCTAssertLessThan(plain.modelFlopsUtilization, narrow.modelFlopsUtilization)
        let meta = Layout(dataParallel: 64, tensorParallel: 8, pipelineParallel: 16, zeroStage: 3, recompute: .selective,
                          microBatch: 1, gradAccum: 32, interleave: 8, balancedEnds: true, overlapsTensorParallel: true)
        let forced = LayoutModel.estimate(shape: Self.llama405, layout: meta, hardware: .h100_sxm_80gb, mfu: 0.4,
                                          timeModel: StepTimeModel.calibrated(for: .h100_sxm_80gb))
        XCTAssertFalse(forced.fits)
        XCTAssertEqual(forced.memory.activations / 0x1p30, 69.9, accuracy: 0.05)
        // Megatron-LM's own estimate (megatron/training/theoretical_memory_usage.py, compute_activation_memory: Table 2
        // of Korthikanti et al. with f/h, the embedding's terms, the interleaved penalty 1 + (p − 1)/(pV), all over t)
        // for the same layout: 68.5 GiB, 2% under ours (its layer count is GPT-2's 18 + 4f/h = 31.0 a layer where ours
        // derives 31.75 for SwiGLU and GQA; ours is the second stage of the balanced pipeline).
        let (s, h, f, l, p, v, t) = (8192.0, 16384.0, 53248.0, 126.0, 16.0, 8.0, 8.0)
        let megatron = (s * h * (18 + 4 * f / h) * l + 8 * s * p + s * h * p) * (1 + (p - 1) / (p * v)) / t
        XCTAssertEqual(megatron / 0x1p30, 68.46, accuracy: 0.01)
        XCTAssertEqual(forced.memory.activations / megatron, 1.021, accuracy: 0.003)
        // 1.0 GiB over the usable 71.7 (it was 5.6 over when the preset was 80e9 bytes, 67.1 usable).
        XCTAssertEqual(forced.memory.total / 0x1p30, 72.69, accuracy: 0.01)
        XCTAssertEqual((forced.memory.total - 0.9 * Hardware.h100_sxm_80gb.memoryBytes) / 0x1p30, 1.01, accuracy: 0.01)
        // Its step time, were it to fit: within ±15% of the published 43%.
        let tokens = 2048.0 * 8192
        let forcedMFU = Self.llama405.flopsPerTokenWithAttention() * tokens / (8192 * 989e12 * forced.step.total)
        print("Llama 3 405B on 8192, Meta's layout timed regardless of memory: \(forcedMFU), "
              + "error \(forcedMFU / published[8192]! - 1), \(forced.memory.total / 0x1p30) GiB")
        XCTAssertLessThanOrEqual(abs(forcedMFU / published[8192]! - 1), 0.15)
    }

    /// The memory-balanced pipeline: 126 layers on 16 stages are 7 on the ends and 8 in between; unbalanced, 8 on each.
    func testBalancedStages() {
        XCTAssertTrue(LayoutModel.stageLayers(Self.llama405, p: 16, balancedEnds: true) == (7, 8, 7))
        XCTAssertTrue(LayoutModel.stageLayers(Self.llama405, p: 16) == (8, 8, 8))
        XCTAssertTrue(LayoutModel.stageLayers(Self.llama405, p: 1, balancedEnds: true) == (126, 126, 126))
        // With 1F1B the first stage holds 16 micro-batches of 7 layers and the second 15 of 8: the second is heavier.
        let l = Layout(dataParallel: 64, tensorParallel: 8, pipelineParallel: 16, zeroStage: 3, recompute: .selective,
                       microBatch: 1, gradAccum: 32, balancedEnds: true)
        let perLayer = MemoryModel.activationBytesPerLayer(Self.llama405, b: 1, t: 8, recompute: .selective)
        XCTAssertEqual(LayoutModel.memory(shape: Self.llama405, layout: l, hardware: .h100_sxm_80gb).activations,
                       perLayer * 8 * 15, accuracy: 1)
    }

    /// Predicted MFU: model FLOPs of the step over the devices' peak for the predicted step time.
    static func predictedMFU(_ r: Run) -> Double {
        let step = LayoutModel.stepTime(shape: r.shape, layout: r.layout, hardware: r.hardware, mfu: 0.4,
                                        timeModel: StepTimeModel.calibrated(for: r.hardware))
        let tokens = Double(r.layout.batchSequences * r.shape.seqLen)
        return r.shape.flopsPerTokenWithAttention() * tokens / (Double(r.layout.devices) * r.hardware.peakFlops * step.total)
    }

    /// At least 80% of the runs within ±15% of the published figure, all within ±30%.
    func testPredictionsMatchPublishedRuns() {
        XCTAssertGreaterThanOrEqual(Self.runs.count, 15)
        var within15 = 0
        var table = ""
        for r in Self.runs {
            let predicted = Self.predictedMFU(r)
            let error = predicted / r.publishedMFU - 1
            if abs(error) <= 0.15 { within15 += 1 }
            XCTAssertLessThanOrEqual(abs(error), 0.30, "\(r.name): published \(r.publishedMFU), predicted \(predicted)")
            table += "| \(r.name) | \(r.source) | \(String(format: "%.1f%%", 100 * r.publishedMFU)) | "
                + "\(String(format: "%.1f%%", 100 * predicted)) | \(String(format: "%+.1f%%", 100 * error)) |\n"
        }
        XCTAssertGreaterThanOrEqual(Double(within15), 0.8 * Double(Self.runs.count), table)
        print(table)
    }
}
