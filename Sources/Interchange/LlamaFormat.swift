import Foundation
import GPT
import GPTShape

/// The parts of a Hugging Face `LlamaConfig` (config.json) that decide the function a `LlamaForCausalLM` computes,
/// and what this project's Llama-family model can run of them.
public struct LlamaConfig: Sendable, Equatable {
    public var hiddenSize: Int
    public var intermediateSize: Int
    public var numHiddenLayers: Int
    public var numAttentionHeads: Int
    public var numKeyValueHeads: Int
    /// Our model's context (the recipe's `model.seq_len`).
    public var maxPositionEmbeddings: Int
    public var vocabSize: Int
    public var ropeTheta: Double
    public var rmsNormEps: Double
    public var tieWordEmbeddings: Bool
    public var bosTokenID: Int?
    public var eosTokenID: Int?
    /// Written as attention_dropout (the recipe's training.dropout).
    public var attentionDropout: Double

    public init(shape: ModelShape, endOfText: Int?, dropout: Double = 0) {
        hiddenSize = shape.dModel
        intermediateSize = shape.dFF
        numHiddenLayers = shape.nLayer
        numAttentionHeads = shape.nHead
        numKeyValueHeads = shape.nKVHead
        maxPositionEmbeddings = shape.seqLen
        vocabSize = shape.vocabSize
        ropeTheta = shape.ropeTheta
        rmsNormEps = shape.normEps
        tieWordEmbeddings = shape.tieEmbeddings
        bosTokenID = endOfText
        eosTokenID = endOfText
        attentionDropout = dropout
    }

    /// The model shape (family llama, no biases).
    public var shape: ModelShape {
        ModelShape(nLayer: numHiddenLayers, nHead: numAttentionHeads, dModel: hiddenSize, dFF: intermediateSize,
                   seqLen: maxPositionEmbeddings, vocabSize: vocabSize, bias: false, family: .llama,
                   nKVHead: numKeyValueHeads, ropeTheta: ropeTheta, normEps: rmsNormEps, tieEmbeddings: tieWordEmbeddings)
    }

    /// The activation of our SwiGLU MLP: SiLU (transformers' "silu"; "swish" is its other name there).
    public static let activation = "silu"

    /// A JSON number for a Double: Swift's shortest round-trip spelling, which is valid JSON ("1e-05", "10000.0").
    static func number(_ x: Double) -> String { String(x) }

    /// config.json. The rotary base is written both as `rope_theta` (transformers before 5 and most tools read it)
    /// and inside `rope_parameters` with `rope_type = "default"` (transformers 5's form); both say the same.
    public func jsonData() -> Data {
        func id(_ x: Int?) -> String { x.map(String.init) ?? "null" }
        let theta = Self.number(ropeTheta)
        let text = """
            {
              "architectures": ["LlamaForCausalLM"],
              "model_type": "llama",
              "hidden_size": \(hiddenSize),
              "intermediate_size": \(intermediateSize),
              "num_hidden_layers": \(numHiddenLayers),
              "num_attention_heads": \(numAttentionHeads),
              "num_key_value_heads": \(numKeyValueHeads),
              "head_dim": \(hiddenSize / numAttentionHeads),
              "max_position_embeddings": \(maxPositionEmbeddings),
              "vocab_size": \(vocabSize),
              "hidden_act": "\(Self.activation)",
              "rms_norm_eps": \(Self.number(rmsNormEps)),
              "rope_theta": \(theta),
              "rope_parameters": {"rope_type": "default", "rope_theta": \(theta)},
              "rope_scaling": null,
              "tie_word_embeddings": \(tieWordEmbeddings),
              "attention_bias": false,
              "mlp_bias": false,
              "attention_dropout": \(Self.number(attentionDropout)),
              "pretraining_tp": 1,
              "initializer_range": 0.02,
              "use_cache": true,
              "bos_token_id": \(id(bosTokenID)),
              "eos_token_id": \(id(eosTokenID)),
              "torch_dtype": "float32"
            }

            """
        return Data(text.utf8)
    }

    /// Reads config.json, refusing what this project's model does not compute: another model type, rotary
    /// scaling (`rope_scaling` or a `rope_parameters.rope_type` other than "default"), a `head_dim` other than
    /// hidden_size / num_attention_heads, biases (`attention_bias`, `mlp_bias`), another activation.
    public static func read(_ data: Data, file: String) throws -> LlamaConfig {
        func fail(_ field: String, _ message: String, _ fix: String) -> InterchangeError {
            InterchangeError(file: file, field: field, message, fix: fix)
        }
        guard let root = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw fail("(top level)", "is not a JSON object", "give the config.json save_pretrained wrote")
        }
        guard root["model_type"] as? String == "llama" else {
            throw fail("model_type", "is \((root["model_type"] as? String).map { "\"\($0)\"" } ?? "missing"); this reader takes Llama models (model_type \"llama\")",
                       "import a LlamaForCausalLM or a GPT2LMHeadModel")
        }
        func present(_ key: String) -> Any? {
            guard let raw = root[key], !(raw is NSNull) else { return nil }
            return raw
        }
        func int(_ key: String, default value: Int? = nil) throws -> Int {
            guard let raw = present(key) else {
                if let value { return value }
                throw fail(key, "is missing", "give the config.json save_pretrained wrote")
            }
            guard let n = SafetensorsFile.integer(raw), n >= 1, n <= 1 << 24 else {
                throw fail(key, "must be a positive integer", "correct it in config.json")
            }
            return n
        }
        func number(_ key: String, in object: [String: Any], field: String, default value: Double) throws -> Double {
            guard let raw = object[key], !(raw is NSNull) else { return value }
            guard let n = raw as? NSNumber, n.doubleValue.isFinite else {
                throw fail(field, "must be a number", "correct it in config.json")
            }
            return n.doubleValue
        }
        func flag(_ key: String, default value: Bool) throws -> Bool {
            guard let raw = present(key) else { return value }
            guard let b = raw as? Bool else {
                throw fail(key, "must be true or false", "correct it in config.json")
            }
            return b
        }

        let hidden = try int("hidden_size"), heads = try int("num_attention_heads")
        let kvHeads = try int("num_key_value_heads", default: heads)
        guard hidden % heads == 0 else {
            throw fail("num_attention_heads", "\(heads) does not divide hidden_size = \(hidden)", "correct config.json")
        }
        guard heads % kvHeads == 0 else {
            throw fail("num_key_value_heads", "\(kvHeads) does not divide num_attention_heads = \(heads): each key/value head serves an equal group of query heads",
                       "correct config.json")
        }
        if let raw = present("head_dim") {
            guard let headDim = SafetensorsFile.integer(raw), headDim == hidden / heads else {
                throw fail("head_dim", "is \(raw), not hidden_size / num_attention_heads = \(hidden / heads); this project's attention heads split hidden_size evenly",
                           "import a model whose head_dim is hidden_size / num_attention_heads")
            }
        }
        guard (hidden / heads) % 2 == 0 else {
            throw fail("num_attention_heads", "gives an odd head size \(hidden / heads); rotary embeddings rotate feature pairs",
                       "import a model with an even head size")
        }
        let activation = present("hidden_act") as? String ?? activation
        guard ["silu", "swish"].contains(activation) else {
            throw fail("hidden_act", "is \"\(activation)\"; this project's SwiGLU MLP computes silu(gate) · up",
                       "import a model with hidden_act = \"silu\"")
        }
        for key in ["attention_bias", "mlp_bias"] where try flag(key, default: false) {
            throw fail(key, "is true; this project's Llama-family model has no biases", "import a model with \(key) = false")
        }

        // Rotary embedding: the default kind only, θ from rope_parameters (transformers 5) or rope_theta.
        var theta = try number("rope_theta", in: root, field: "rope_theta", default: 10_000)
        for key in ["rope_scaling", "rope_parameters"] {
            guard let raw = present(key) else { continue }
            guard let object = raw as? [String: Any] else {
                throw fail(key, "must be an object or null", "correct it in config.json")
            }
            let kind = (object["rope_type"] ?? object["type"]) as? String ?? "default"
            guard kind == "default" else {
                throw fail(key, "asks for rotary scaling \"\(kind)\" (\(object.keys.sorted().joined(separator: ", "))); this project's rotary embedding is the unscaled one (rope_type \"default\")",
                           "import a model without rope_scaling, or remove it from config.json if the model was trained without it")
            }
            if key == "rope_parameters" {
                theta = try number("rope_theta", in: object, field: "rope_parameters.rope_theta", default: theta)
            }
        }
        guard theta >= 1, theta <= 1e10 else {
            throw fail("rope_theta", "is \(theta); the recipe's model.rope_theta takes 1 to 1e10", "correct config.json")
        }
        let eps = try number("rms_norm_eps", in: root, field: "rms_norm_eps", default: 1e-6)
        guard eps > 0, eps <= 0.1 else {
            throw fail("rms_norm_eps", "is \(eps); the recipe's model.norm_eps takes values above 0 up to 0.1", "correct config.json")
        }

        let shape = ModelShape(
            nLayer: try int("num_hidden_layers"), nHead: heads, dModel: hidden, dFF: try int("intermediate_size"),
            seqLen: try int("max_position_embeddings", default: 2048), vocabSize: try int("vocab_size"), bias: false,
            family: .llama, nKVHead: kvHeads, ropeTheta: theta, normEps: eps,
            tieEmbeddings: try flag("tie_word_embeddings", default: false))
        var config = LlamaConfig(shape: shape, endOfText: nil, dropout: 0)
        config.bosTokenID = present("bos_token_id").flatMap(SafetensorsFile.integer)
        config.eosTokenID = present("eos_token_id").flatMap(SafetensorsFile.integer)
        return config
    }
}

/// How our Llama checkpoint tensors map onto `LlamaForCausalLM`'s: the same names (the parameter layout uses
/// Hugging Face's), the same `nn.Linear` `[out, in]` layout (no transposes), q_proj, k_proj and v_proj as the three
/// row blocks of our stacked qkv matrix, and `lm_head.weight` only when the head is untied (transformers ties it to
/// `model.embed_tokens.weight` otherwise and save_pretrained leaves it out).
public enum LlamaWeights {
    /// The tensors of LlamaForCausalLM for our parameters, in its state-dict order.
    public static func tensors(_ layout: ParameterLayout, parameters: UnsafePointer<Float>) -> [Safetensors.Tensor] {
        precondition(layout.shape.family == .llama, "LlamaWeights: a \(layout.shape.family.rawValue) layout")
        return layout.tensors.map { tensor in
            Safetensors.Tensor(name: tensor.name, shape: tensor.shape,
                               values: Array(UnsafeBufferPointer(start: parameters + tensor.offset, count: tensor.count)))
        }
    }

    /// Fills our parameters from a LlamaForCausalLM safetensors file (names with or without the `model.` prefix;
    /// the rotary `inv_freq` buffers old transformers saved, and a `lm_head.weight` equal to the token embedding
    /// of a tied model, are accepted and skipped).
    /// - Throws: `InterchangeError` naming the tensor: missing, a shape that does not match config.json, a dtype
    ///   that is not float, a tied head that differs from the embedding, a tensor the model does not have, or
    ///   non-finite values.
    public static func load(_ file: SafetensorsFile, layout: ParameterLayout, configFile: String,
                            into parameters: UnsafeMutablePointer<Float>) throws {
        let s = layout.shape
        var remaining = Set(file.entries.keys)
        func find(_ name: String) -> String? {
            if file.entries[name] != nil { return name }
            guard name.hasPrefix("model.") else { return nil }
            let short = String(name.dropFirst("model.".count))
            return file.entries[short] != nil ? short : nil
        }
        for tensor in layout.tensors {
            guard let key = find(tensor.name) else {
                throw InterchangeError(file: file.path, field: tensor.name,
                                       "is missing (a LlamaForCausalLM with \(configFile)'s tie_word_embeddings = \(s.tieEmbeddings) has it)",
                                       fix: tensor.name == "lm_head.weight"
                                           ? "save the LlamaForCausalLM (not the LlamaModel inside it), or set tie_word_embeddings = true if its head is the embedding"
                                           : "save the whole model with save_pretrained")
            }
            remaining.remove(key)
            let stored = file.entries[key]!
            guard stored.shape == tensor.shape else {
                throw InterchangeError(file: file.path, field: key,
                                       "has shape \(stored.shape), but \(configFile) (num_hidden_layers \(s.nLayer), hidden_size \(s.dModel), num_attention_heads \(s.nHead), num_key_value_heads \(s.nKVHead), intermediate_size \(s.dFF), vocab_size \(s.vocabSize)) gives \(tensor.shape)",
                                       fix: "import the config.json saved with these weights")
            }
            let values = try file.floats(key)
            if let bad = values.firstIndex(where: { !$0.isFinite }) {
                throw InterchangeError(file: file.path, field: key, "holds a non-finite value (\(values[bad]) at element \(bad))",
                                       fix: "import a model whose weights are finite")
            }
            values.withUnsafeBufferPointer { (parameters + tensor.offset).update(from: $0.baseAddress!, count: tensor.count) }
        }
        for key in remaining.sorted() {
            if key.hasSuffix("rotary_emb.inv_freq") { continue }  // a buffer computed from rope_theta
            if key == "lm_head.weight" {
                let head = try file.floats(key)
                let embedding = parameters + layout.wte
                guard head.count == s.vocabSize * s.dModel,
                      head.indices.allSatisfy({ head[$0].bitPattern == embedding[$0].bitPattern }) else {
                    throw InterchangeError(file: file.path, field: key,
                                           "differs from model.embed_tokens.weight, but \(configFile) says tie_word_embeddings = true",
                                           fix: "set tie_word_embeddings to false in config.json (the model's head is its own matrix)")
                }
                continue
            }
            throw InterchangeError(file: file.path, field: key, "is not a tensor of LlamaForCausalLM",
                                   fix: "import a plain LlamaForCausalLM (no adapters, biases or extra heads)")
        }
    }
}
