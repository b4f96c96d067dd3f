import Foundation
import GPT
import GPTShape

/// The parts of a Hugging Face `GPT2Config` (config.json) that decide the function a `GPT2LMHeadModel` computes,
/// and what this project's model can run of them.
public struct GPT2Config: Sendable, Equatable {
    public var nLayer: Int
    public var nHead: Int
    public var nEmbd: Int
    public var nPositions: Int
    public var vocabSize: Int
    public var nInner: Int
    public var bosTokenID: Int?
    public var eosTokenID: Int?
    /// Written as attn_pdrop, embd_pdrop and resid_pdrop (the recipe's training.dropout).
    public var dropout: Double

    public init(shape: ModelShape, endOfText: Int?, dropout: Double = 0) {
        nLayer = shape.nLayer
        nHead = shape.nHead
        nEmbd = shape.dModel
        nPositions = shape.seqLen
        vocabSize = shape.vocabSize
        nInner = shape.dFF
        bosTokenID = endOfText
        eosTokenID = endOfText
        self.dropout = dropout
    }

    /// The model shape (GPT-2 has biases).
    public var shape: ModelShape {
        ModelShape(nLayer: nLayer, nHead: nHead, dModel: nEmbd, dFF: nInner, seqLen: nPositions, vocabSize: vocabSize, bias: true)
    }

    /// The GELU our kernel computes: the tanh approximation, transformers' "gelu_new".
    public static let activation = "gelu_new"
    /// LayerNorm's epsilon in our kernel.
    public static let layerNormEpsilon = 1e-5

    /// config.json.
    public func jsonData() -> Data {
        func id(_ x: Int?) -> String { x.map(String.init) ?? "null" }
        let p = String(dropout)
        let text = """
            {
              "architectures": ["GPT2LMHeadModel"],
              "model_type": "gpt2",
              "n_layer": \(nLayer),
              "n_head": \(nHead),
              "n_embd": \(nEmbd),
              "n_inner": \(nInner),
              "n_positions": \(nPositions),
              "n_ctx": \(nPositions),
              "vocab_size": \(vocabSize),
              "activation_function": "\(Self.activation)",
              "layer_norm_epsilon": 1e-05,
              "scale_attn_weights": true,
              "scale_attn_by_inverse_layer_idx": false,
              "reorder_and_upcast_attn": false,
              "add_cross_attention": false,
              "tie_word_embeddings": true,
              "attn_pdrop": \(p),
              "embd_pdrop": \(p),
              "resid_pdrop": \(p),
              "initializer_range": 0.02,
              "use_cache": true,
              "bos_token_id": \(id(bosTokenID)),
              "eos_token_id": \(id(eosTokenID)),
              "torch_dtype": "float32"
            }

            """
        return Data(text.utf8)
    }

    /// generation_config.json: the end-of-text id, and the padded rows of the vocabulary (`suppress`, ids no
    /// tokenizer token has) masked out of generation.
    public func generationConfigData(suppress: Range<Int>) -> Data {
        Self.generationConfigData(bos: bosTokenID, eos: eosTokenID, suppress: suppress)
    }

    /// generation_config.json for any family: the token ids and the suppressed padded rows.
    public static func generationConfigData(bos bosTokenID: Int?, eos eosTokenID: Int?, suppress: Range<Int>) -> Data {
        func id(_ x: Int?) -> String { x.map(String.init) ?? "null" }
        var text = "{\n  \"_from_model_config\": true,\n  \"bos_token_id\": \(id(bosTokenID)),\n  \"eos_token_id\": \(id(eosTokenID))"
        if !suppress.isEmpty { text += ",\n  \"suppress_tokens\": [\(suppress.map(String.init).joined(separator: ", "))]" }
        return Data((text + "\n}\n").utf8)
    }

    /// Reads config.json, refusing what this project's model does not compute.
    public static func read(_ data: Data, file: String) throws -> GPT2Config {
        func fail(_ field: String, _ message: String, _ fix: String) -> InterchangeError {
            InterchangeError(file: file, field: field, message, fix: fix)
        }
        guard let root = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw fail("(top level)", "is not a JSON object", "give the config.json save_pretrained wrote")
        }
        let modelType = root["model_type"] as? String
        let architectures = root["architectures"] as? [String] ?? []
        guard modelType == "gpt2" || (modelType == nil && architectures.contains("GPT2LMHeadModel")) else {
            throw fail("model_type", "is \(modelType.map { "\"\($0)\"" } ?? "missing"); only GPT-2 (model_type \"gpt2\") and Llama (\"llama\") models can be imported",
                       "import a GPT2LMHeadModel or a LlamaForCausalLM")
        }
        func int(_ key: String, default value: Int? = nil) throws -> Int {
            guard let raw = root[key], !(raw is NSNull) else {
                if let value { return value }
                throw fail(key, "is missing", "give the config.json save_pretrained wrote")
            }
            guard let n = SafetensorsFile.integer(raw), n >= 1, n <= 1 << 24 else {
                throw fail(key, "must be a positive integer", "correct it in config.json")
            }
            return n
        }
        let nEmbd = try int("n_embd")
        var config = GPT2Config(
            shape: ModelShape(nLayer: try int("n_layer"), nHead: try int("n_head"), dModel: nEmbd, dFF: try int("n_inner", default: 4 * nEmbd),
                              seqLen: try int("n_positions"), vocabSize: try int("vocab_size"), bias: true),
            endOfText: nil)
        config.bosTokenID = (root["bos_token_id"]).flatMap(SafetensorsFile.integer)
        config.eosTokenID = (root["eos_token_id"]).flatMap(SafetensorsFile.integer)
        let activation = root["activation_function"] as? String ?? activation
        guard ["gelu_new", "gelu_pytorch_tanh"].contains(activation) else {
            throw fail("activation_function", "is \"\(activation)\"; this project's MLP computes GPT-2's tanh GELU (\"gelu_new\") only",
                       "import a model trained with gelu_new")
        }
        if let eps = root["layer_norm_epsilon"] as? NSNumber, eps.doubleValue != layerNormEpsilon {
            throw fail("layer_norm_epsilon", "is \(eps); this project's LayerNorm uses 1e-05", "import a model with layer_norm_epsilon = 1e-05")
        }
        for (key, wanted) in [("scale_attn_weights", true), ("scale_attn_by_inverse_layer_idx", false), ("add_cross_attention", false),
                              ("tie_word_embeddings", true)] {
            if let value = root[key] as? Bool, value != wanted {
                throw fail(key, "is \(value); this project's model needs \(wanted)", "import a model with \(key) = \(wanted)")
            }
        }
        guard config.nEmbd % config.nHead == 0 else {
            throw fail("n_head", "\(config.nHead) does not divide n_embd = \(config.nEmbd)", "correct config.json")
        }
        return config
    }
}

/// How our checkpoint tensors map onto `GPT2LMHeadModel`'s: the same names (nanoGPT kept GPT-2's), the linear
/// weights transposed (our `[out, in]`, transformers' Conv1D `[in, out]`), zero biases where the model has none,
/// and the tied head left out (transformers ties `lm_head.weight` to `transformer.wte.weight`).
public enum GPT2Weights {
    /// One tensor of GPT2LMHeadModel: its name and shape there, where it lives in our parameters (nil: a bias our
    /// bias-free model lacks, exported as zeros), and whether it is a transposed linear weight.
    public struct Entry: Sendable, Equatable {
        public var name: String
        public var shape: [Int]
        public var offset: Int?
        public var transposed: Bool
        public var count: Int { shape.reduce(1, *) }
    }

    /// Every tensor of GPT2LMHeadModel's state dict except the tied head, in its order.
    public static func entries(_ layout: ParameterLayout) -> [Entry] {
        let s = layout.shape, c = s.dModel, f = s.dFF
        func at(_ offset: Int) -> Int? { offset < 0 ? nil : offset }
        var list = [Entry(name: "transformer.wte.weight", shape: [s.vocabSize, c], offset: layout.wte, transposed: false),
                    Entry(name: "transformer.wpe.weight", shape: [s.seqLen, c], offset: layout.wpe, transposed: false)]
        for (l, o) in layout.layers.enumerated() {
            let p = "transformer.h.\(l)."
            list += [
                Entry(name: p + "ln_1.weight", shape: [c], offset: o.ln1Weight, transposed: false),
                Entry(name: p + "ln_1.bias", shape: [c], offset: at(o.ln1Bias), transposed: false),
                Entry(name: p + "attn.c_attn.weight", shape: [c, 3 * c], offset: o.qkvWeight, transposed: true),
                Entry(name: p + "attn.c_attn.bias", shape: [3 * c], offset: at(o.qkvBias), transposed: false),
                Entry(name: p + "attn.c_proj.weight", shape: [c, c], offset: o.attnProjWeight, transposed: true),
                Entry(name: p + "attn.c_proj.bias", shape: [c], offset: at(o.attnProjBias), transposed: false),
                Entry(name: p + "ln_2.weight", shape: [c], offset: o.ln2Weight, transposed: false),
                Entry(name: p + "ln_2.bias", shape: [c], offset: at(o.ln2Bias), transposed: false),
                Entry(name: p + "mlp.c_fc.weight", shape: [c, f], offset: o.fcWeight, transposed: true),
                Entry(name: p + "mlp.c_fc.bias", shape: [f], offset: at(o.fcBias), transposed: false),
                Entry(name: p + "mlp.c_proj.weight", shape: [f, c], offset: o.mlpProjWeight, transposed: true),
                Entry(name: p + "mlp.c_proj.bias", shape: [c], offset: at(o.mlpProjBias), transposed: false),
            ]
        }
        list += [Entry(name: "transformer.ln_f.weight", shape: [c], offset: layout.lnfWeight, transposed: false),
                 Entry(name: "transformer.ln_f.bias", shape: [c], offset: at(layout.lnfBias), transposed: false)]
        return list
    }

    /// The tensors of GPT2LMHeadModel for our parameters.
    public static func tensors(_ layout: ParameterLayout, parameters: UnsafePointer<Float>) -> [Safetensors.Tensor] {
        entries(layout).map { entry in
            var values = [Float](repeating: 0, count: entry.count)
            if let offset = entry.offset {
                let source = parameters + offset
                if entry.transposed {
                    // Ours is [out, in] = [shape[1], shape[0]]; theirs [in, out].
                    let rows = entry.shape[1], cols = entry.shape[0]
                    for r in 0..<rows { for k in 0..<cols { values[k * rows + r] = source[r * cols + k] } }
                } else {
                    for i in 0..<entry.count { values[i] = source[i] }
                }
            }
            return Safetensors.Tensor(name: entry.name, shape: entry.shape, values: values)
        }
    }

    /// Fills our parameters from a GPT2LMHeadModel safetensors file (names with or without the `transformer.`
    /// prefix; the causal-mask buffers `attn.bias`/`attn.masked_bias` and a `lm_head.weight` equal to the token
    /// embedding are accepted and skipped).
    /// - Throws: `InterchangeError` naming the tensor: missing, a shape that does not match config.json, a dtype
    ///   that is not float, an untied head, a tensor the model does not have, or non-finite values.
    public static func load(_ file: SafetensorsFile, layout: ParameterLayout, configFile: String,
                            into parameters: UnsafeMutablePointer<Float>) throws {
        var remaining = Set(file.entries.keys)
        func find(_ name: String) -> String? {
            if file.entries[name] != nil { return name }
            let short = String(name.dropFirst("transformer.".count))
            return file.entries[short] != nil ? short : nil
        }
        for entry in entries(layout) {
            guard let key = find(entry.name) else {
                throw InterchangeError(file: file.path, field: entry.name, "is missing (a GPT2LMHeadModel has it)",
                                       fix: "save the whole model with save_pretrained")
            }
            remaining.remove(key)
            let stored = file.entries[key]!
            guard stored.shape == entry.shape else {
                throw InterchangeError(file: file.path, field: key,
                                       "has shape \(stored.shape), but \(configFile) (n_layer \(layout.shape.nLayer), n_embd \(layout.shape.dModel), n_inner \(layout.shape.dFF), n_positions \(layout.shape.seqLen), vocab_size \(layout.shape.vocabSize)) gives \(entry.shape)",
                                       fix: "import the config.json saved with these weights")
            }
            let values = try file.floats(key)
            if let bad = values.firstIndex(where: { !$0.isFinite }) {
                throw InterchangeError(file: file.path, field: key, "holds a non-finite value (\(values[bad]) at element \(bad))",
                                       fix: "import a model whose weights are finite")
            }
            guard let offset = entry.offset else {
                if values.contains(where: { $0 != 0 }) {
                    throw InterchangeError(file: file.path, field: key, "is not zero, and the model has no biases",
                                           fix: "import into a model with biases")
                }
                continue
            }
            let target = parameters + offset
            if entry.transposed {
                let rows = entry.shape[1], cols = entry.shape[0]
                for r in 0..<rows { for k in 0..<cols { target[r * cols + k] = values[k * rows + r] } }
            } else {
                for i in 0..<entry.count { target[i] = values[i] }
            }
        }
        for key in remaining.sorted() {
            if key.hasSuffix(".attn.bias") || key.hasSuffix(".attn.masked_bias") { continue }  // causal-mask buffers
            if key == "lm_head.weight" {
                let head = try file.floats(key)
                let wte = parameters + layout.wte
                guard head.count == layout.shape.vocabSize * layout.shape.dModel,
                      head.indices.allSatisfy({ head[$0].bitPattern == wte[$0].bitPattern }) else {
                    throw InterchangeError(file: file.path, field: key, "differs from the token embedding (an untied head)",
                                           fix: "this project's model ties its head to transformer.wte.weight; import a tied model")
                }
                continue
            }
            throw InterchangeError(file: file.path, field: key, "is not a tensor of GPT2LMHeadModel",
                                   fix: "import a plain GPT2LMHeadModel (no adapters or extra heads)")
        }
    }
}

/// llm.c's model file (`gpt2_124M.bin`, as its train_gpt2.py writes and train_gpt2.c / train_gpt2.cu read): a
/// header of 256 int32 (magic 20240326, version 3, max_seq_len, vocab_size, num_layers, num_heads, channels,
/// padded_vocab_size, then zeros), then every parameter as float32 in llm.c's order: wte (padded_vocab_size × C),
/// wpe, then each kind of block tensor for all layers at once (ln1w, ln1b, qkvw, qkvb, attprojw, attprojb, ln2w,
/// ln2b, fcw, fcb, fcprojw, fcprojb), then lnfw, lnfb. Weights are `[out, in]` as in PyTorch's `nn.Linear`.
public enum LLMCModelFile {
    public static let magic: Int32 = 20240326
    public static let version: Int32 = 3
    /// llm.c pads the vocabulary to a multiple of 128.
    public static let vocabularyMultiple = 128

    /// The file for our parameters. `vocabulary` is the tokenizer's size (llm.c's `vocab_size`); the embedding is
    /// written with our rows up to the model's vocabulary and zero rows after it, up to a multiple of 128.
    /// - Throws: `InterchangeError` when the MLP is not 4·d_model wide (llm.c's is fixed).
    public static func encode(_ layout: ParameterLayout, parameters: UnsafePointer<Float>, vocabulary: Int, file: String) throws -> Data {
        let s = layout.shape, c = s.dModel, l = s.nLayer
        guard s.family == .gpt2 else {
            throw InterchangeError(file: file, field: "model.family",
                                   "is \"\(s.family.rawValue)\", but llm.c's model file holds GPT-2 blocks only (LayerNorm, GELU, learned positions)",
                                   fix: "export this model to Hugging Face instead (--to hf writes a LlamaForCausalLM)")
        }
        guard s.dFF == 4 * c else {
            throw InterchangeError(file: file, field: "model.d_ff", "is \(s.dFF), but llm.c's MLP is 4 × d_model = \(4 * c) wide",
                                   fix: "export this model to Hugging Face instead (--to hf)")
        }
        let padded = (s.vocabSize + vocabularyMultiple - 1) / vocabularyMultiple * vocabularyMultiple
        var header = [Int32](repeating: 0, count: 256)
        header[0] = magic
        header[1] = version
        header[2] = Int32(s.seqLen)
        header[3] = Int32(vocabulary)
        header[4] = Int32(l)
        header[5] = Int32(s.nHead)
        header[6] = Int32(c)
        header[7] = Int32(padded)
        var floats: [Float] = []
        floats.reserveCapacity(padded * c + layout.count + 16 * l * c)
        func append(_ offset: Int, _ count: Int) {
            if offset < 0 {
                floats.append(contentsOf: repeatElement(0, count: count))
            } else {
                floats.append(contentsOf: UnsafeBufferPointer(start: parameters + offset, count: count))
            }
        }
        append(layout.wte, s.vocabSize * c)
        floats.append(contentsOf: repeatElement(0, count: (padded - s.vocabSize) * c))
        append(layout.wpe, s.seqLen * c)
        let perLayer: [(KeyPath<LayerOffsets, Int>, Int)] = [
            (\.ln1Weight, c), (\.ln1Bias, c), (\.qkvWeight, 3 * c * c), (\.qkvBias, 3 * c), (\.attnProjWeight, c * c),
            (\.attnProjBias, c), (\.ln2Weight, c), (\.ln2Bias, c), (\.fcWeight, 4 * c * c), (\.fcBias, 4 * c),
            (\.mlpProjWeight, 4 * c * c), (\.mlpProjBias, c),
        ]
        for (keyPath, count) in perLayer {
            for layer in layout.layers { append(layer[keyPath: keyPath], count) }
        }
        append(layout.lnfWeight, c)
        append(layout.lnfBias, c)
        var data = Data(capacity: 1024 + floats.count * 4)
        header.withUnsafeBytes { data.append(contentsOf: $0) }
        floats.withUnsafeBytes { data.append(contentsOf: $0) }
        return data
    }
}
