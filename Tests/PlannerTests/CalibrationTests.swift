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
