import GPTShape
import Planner
import XCTest

/// Llama-style shapes beside GPT-2's: parameter counts against the published models, FLOPs per token, activation
/// memory per layer.
final class ModelFamilyTests: XCTestCase {
    static func gpt2(_ l: Int, _ d: Int, _ h: Int) -> ModelShape {
        ModelShape(nLayer: l, nHead: h, dModel: d, dFF: 4 * d, seqLen: 1024, vocabSize: 50257, bias: true)
    }

    /// Llama 3's config.json values (meta-llama/Meta-Llama-3-8B, -70B, Llama-3.1-405B): hidden_size,
    /// intermediate_size, num_hidden_layers, num_attention_heads, num_key_value_heads, vocab_size 128256,
    /// rope_theta 500000, rms_norm_eps 1e-5, tie_word_embeddings false.
    static func llama3(_ l: Int, _ d: Int, _ ff: Int, _ h: Int, seqLen: Int = 8192) -> ModelShape {
        ModelShape(nLayer: l, nHead: h, dModel: d, dFF: ff, seqLen: seqLen, vocabSize: 128_256, bias: false,
                   family: .llama, nKVHead: 8, ropeTheta: 500_000, normEps: 1e-5)
    }

    /// Hugging Face's `GPT2LMHeadModel(...).num_parameters()` for GPT-2 small, medium, large and XL (biases,
    /// vocabulary 50257, 1024 positions, tied head counted once).
    func testGPT2CountsAreHuggingFaces() {
        XCTAssertEqual(Self.gpt2(12, 768, 12).parameterCount.total, 124_439_808)
        XCTAssertEqual(Self.gpt2(24, 1024, 16).parameterCount.total, 354_823_168)
        XCTAssertEqual(Self.gpt2(36, 1280, 20).parameterCount.total, 774_030_080)
        XCTAssertEqual(Self.gpt2(48, 1600, 25).parameterCount.total, 1_557_611_200)
    }

    /// `LlamaForCausalLM` built from each config.json (on PyTorch's meta device) has exactly these parameters:
    /// 8.03B, 70.6B and 405.9B as Meta publishes them.
    func testLlama3CountsAreTheConfigs() {
        let l8 = Self.llama3(32, 4096, 14336, 32), l70 = Self.llama3(80, 8192, 28672, 64)
        let l405 = Self.llama3(126, 16384, 53248, 128)
        XCTAssertEqual(l8.parameterCount.total, 8_030_261_248)
        XCTAssertEqual(l70.parameterCount.total, 70_553_706_496)
        XCTAssertEqual(l405.parameterCount.total, 405_853_388_800)
        // No position table; the untied head is a second vocab × d matrix.
        XCTAssertEqual(l8.parameterCount.positionEmbedding, 0)
        XCTAssertEqual(l8.parameterCount.outputHead, 128_256 * 4096)
        // Per layer: q, o 4096²; k, v 4096 × 1024; gate, up, down 3 × 4096 × 14336; two RMSNorm gains.
        XCTAssertEqual(l8.parametersPerLayer, 2 * 4096 * 4096 + 2 * 4096 * 1024 + 3 * 4096 * 14336 + 2 * 4096)
        // Tying the head removes exactly one vocab × d matrix.
        var tied = l8
        tied.tieEmbeddings = true
        XCTAssertEqual(l8.parameterCount.total - tied.parameterCount.total, 128_256 * 4096)
    }

    /// 6N' + 12·L·n_head·head_size·T, N' the blocks plus the output head (tied or not). Grouped-query attention
    /// changes only the K and V projections (in N'), not the attention term.
    func testFlopsPerTokenCountsTheHeadAndLeavesAttentionToTheQueryHeads() {
        let l8 = Self.llama3(32, 4096, 14336, 32)
        let nPrime = 8_030_261_248 - 128_256 * 4096   // the token embedding is a lookup
        XCTAssertEqual(l8.parameterCount.matmul, nPrime)
        XCTAssertEqual(l8.flopsPerTokenWithAttention(), 6 * Double(nPrime) + 12 * 32 * 4096 * 8192)
        var mha = l8
        mha.nKVHead = 32
        XCTAssertEqual(mha.attentionFlopsPerToken(), l8.attentionFlopsPerToken())
        XCTAssertEqual(mha.flopsPerTokenWithAttention() - l8.flopsPerTokenWithAttention(),
                       6 * Double(32 * 2 * 4096 * (4096 - 1024)))
        // GPT-2 is unchanged: the tied head is the token embedding, the position embedding is left out.
        let small = Self.gpt2(12, 768, 12)
        XCTAssertEqual(small.parameterCount.matmul, small.parameterCount.total - 1024 * 768)
    }

    /// The shape-based activation count is Korthikanti et al.'s Table 2 for GPT-2 blocks (GPT-3 175B), and the
    /// derived SwiGLU/GQA count for Llama: sbh(12 + 4g/h + 6f/h) + 2as²b.
    func testActivationsPerLayerByFamily() {
        let gpt3 = ModelShape(nLayer: 96, nHead: 96, dModel: 12288, dFF: 4 * 12288, seqLen: 2048, vocabSize: 51200,
                              bias: true)
        for t in [1, 8] {
            for r in Recompute.allCases {
                XCTAssertEqual(MemoryModel.activationBytesPerLayer(gpt3, b: 1, t: t, recompute: r),
                               MemoryModel.activationBytesPerLayer(s: 2048, b: 1, h: 12288, a: 96, t: t, recompute: r),
                               accuracy: 1e-6 * MemoryModel.activationBytesPerLayer(gpt3, b: 1, t: t, recompute: r), "\(t) \(r)")
            }
        }
        let l8 = Self.llama3(32, 4096, 14336, 32)
        let sbh = 8192.0 * 4096
        // 12 + 4·1024/4096 + 6·14336/4096 = 34; the scores 2·a·s² (no dropout).
        XCTAssertEqual(MemoryModel.activationBytesPerLayer(l8, b: 1, recompute: .selective), 34 * sbh)
        XCTAssertEqual(MemoryModel.activationBytesPerLayer(l8, b: 1, recompute: .none), 34 * sbh + 2 * 32 * 8192 * 8192)
        XCTAssertEqual(MemoryModel.activationBytesPerLayer(l8, b: 2, t: 8, recompute: .selective), 34 * 2 * sbh / 8)
        XCTAssertEqual(MemoryModel.activationBytesPerLayer(l8, b: 1, t: 8, recompute: .full), 2 * sbh)
        // Grouped-query attention keeps 4·s·b·(h − g) bytes fewer than multi-head attention.
        var mha = l8
        mha.nKVHead = 32
        XCTAssertEqual(MemoryModel.activationBytesPerLayer(mha, b: 1, recompute: .selective)
                       - MemoryModel.activationBytesPerLayer(l8, b: 1, recompute: .selective), 4 * 8192 * (4096 - 1024))
    }

    func testShapeValidationByFamily() {
        var s = Self.llama3(32, 4096, 14336, 32)
        XCTAssertNoThrow(try s.validate())
        s.nKVHead = 5
        XCTAssertThrowsError(try s.validate()) { XCTAssertEqual($0 as? ModelShapeError, .kvHeadsDoNotDivideHeads(nHead: 32, nKVHead: 5)) }
        var g = Self.gpt2(12, 768, 12)
        g.nKVHead = 4
        XCTAssertThrowsError(try g.validate()) { XCTAssertEqual($0 as? ModelShapeError, .groupedQueryInGPT2(nHead: 12, nKVHead: 4)) }
    }

    /// The shape search with Llama 3's proportions: head size 128, 8 KV heads, d_ff = 3.5·d rounded up to 256,
    /// untied head, rotary base 500000; the split of the budget does not depend on the family.
    func testLlamaShapeSearchUsesLlama3Proportions() throws {
        let l8 = ShapeSearch.template(family: .llama, width: 4096, seqLen: 8192, vocabSize: 128_256, bias: false)
        XCTAssertEqual([l8.nHead, l8.nKVHead, l8.dFF], [32, 8, 14336])
        XCTAssertEqual(ShapeSearch.llamaFF(8192), 28672)
        XCTAssertFalse(l8.tieEmbeddings)
        XCTAssertEqual(l8.ropeTheta, 500_000)
        var r = PlanRequest(target: .flops(1e22), hardware: .given(.h100_sxm_80gb))
        r.vocabSize = 128_256
        let gpt2 = try Plan.make(r)
        r.family = .llama
        let llama = try Plan.make(r)
        XCTAssertEqual(llama.allocation.idealParams, gpt2.allocation.idealParams)
        let s = llama.shape
        XCTAssertEqual(s.family, .llama)
        XCTAssertEqual([s.dModel, s.nHead, s.nKVHead, s.dFF], [4096, 32, 8, 14336])
        XCTAssertEqual(s.nLayer, 36)
        XCTAssertEqual(Double(llama.params) / llama.allocation.idealParams, 1, accuracy: ShapeSearch.tolerance)
        for budget in [1e18, 1e20, 1e24, 1e25] {
            r.target = .flops(budget)
            let shape = try Plan.make(r).shape
            XCTAssertEqual(shape.headSize, 128, "\(budget)")
            XCTAssertTrue(shape.nHead <= 8 || shape.nHead % 8 == 0, "\(budget): \(shape.nHead) heads")
            XCTAssertEqual(shape.nHead % shape.nKVHead, 0)
            XCTAssertEqual(shape.dFF, ShapeSearch.llamaFF(shape.dModel))
            XCTAssertNoThrow(try shape.validate())
        }
    }
}
