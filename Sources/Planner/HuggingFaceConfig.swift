import Foundation
import GPTShape

/// Why a Hugging Face `config.json` cannot be read as a model shape.
public enum HuggingFaceConfigError: Error, Equatable, Sendable, CustomStringConvertible {
    case notJSON
    /// `model_type` is neither GPT-2 nor Llama.
    case unsupportedModelType(String)
    /// A key that must be present is absent, or not a number where one is needed.
    case missing(String)
    case invalid(key: String, value: String, why: String)

    public var description: String {
        switch self {
        case .notJSON: return "not a JSON object"
        case .unsupportedModelType(let t):
            return "model_type \"\(t)\" is not one the planner counts; it reads \"gpt2\" and \"llama\" configs"
        case .missing(let key): return "\(key) is missing (or not a number)"
        case let .invalid(key, value, why): return "\(key) = \(value): \(why)"
        }
    }
}

extension ModelShape {
    /// The shape a Hugging Face `config.json` describes: GPT-2 (`model_type` "gpt2": `n_layer`, `n_head`, `n_embd`,
    /// `n_inner` or 4·n_embd, `n_positions`, `vocab_size`, `layer_norm_epsilon`; biases; head tied unless
    /// `tie_word_embeddings` is false) or Llama (`model_type` "llama": `num_hidden_layers`, `num_attention_heads`,
    /// `num_key_value_heads` (default the heads), `hidden_size`, `intermediate_size`, `max_position_embeddings`,
    /// `vocab_size`, `rope_theta` (default 10000), `rms_norm_eps`, `tie_word_embeddings` (default false),
    /// `attention_bias`). `seqLen`, when given, replaces the config's positions (the context trained at).
    public static func fromHuggingFaceConfig(_ data: Data, seqLen: Int? = nil) throws(HuggingFaceConfigError) -> ModelShape {
        guard let object = try? JSONSerialization.jsonObject(with: data), let c = object as? [String: Any] else {
            throw .notJSON
        }
        func int(_ key: String) throws(HuggingFaceConfigError) -> Int {
            guard let n = c[key] as? NSNumber else { throw .missing(key) }
            let d = n.doubleValue
            guard d == d.rounded(), d >= 1, d <= Double(1 << 40) else {
                throw .invalid(key: key, value: "\(n)", why: "must be a whole number of at least 1")
            }
            return Int(d)
        }
        func optionalInt(_ key: String) throws(HuggingFaceConfigError) -> Int? {
            guard let v = c[key], !(v is NSNull) else { return nil }
            return try int(key)
        }
        func double(_ key: String, default value: Double) throws(HuggingFaceConfigError) -> Double {
            guard let v = c[key], !(v is NSNull) else { return value }
            guard let n = v as? NSNumber, n.doubleValue.isFinite, n.doubleValue > 0 else {
                throw .invalid(key: key, value: "\(v)", why: "must be a positive number")
            }
            return n.doubleValue
        }
        func bool(_ key: String, default value: Bool) -> Bool { (c[key] as? Bool) ?? value }
        func positions(_ key: String) throws(HuggingFaceConfigError) -> Int {
            if let seqLen { return seqLen }
            return try int(key)
        }
        let type = (c["model_type"] as? String) ?? ""
        let shape: ModelShape
        switch type {
        case "gpt2":
            let d = try int("n_embd")
            shape = ModelShape(nLayer: try int("n_layer"), nHead: try int("n_head"), dModel: d,
                               dFF: try optionalInt("n_inner") ?? 4 * d, seqLen: try positions("n_positions"),
                               vocabSize: try int("vocab_size"), bias: true, family: .gpt2,
                               normEps: try double("layer_norm_epsilon", default: 1e-5),
                               tieEmbeddings: bool("tie_word_embeddings", default: true))
        case "llama":
            let heads = try int("num_attention_heads"), d = try int("hidden_size")
            if let headDim = try optionalInt("head_dim"), headDim * heads != d {
                throw .invalid(key: "head_dim", value: "\(headDim)",
                               why: "heads × head_dim = \(heads * headDim) differs from hidden_size \(d), which the planner's shapes cannot express")
            }
            shape = ModelShape(nLayer: try int("num_hidden_layers"), nHead: heads, dModel: d,
                               dFF: try int("intermediate_size"), seqLen: try positions("max_position_embeddings"),
                               vocabSize: try int("vocab_size"), bias: bool("attention_bias", default: false),
                               family: .llama, nKVHead: try optionalInt("num_key_value_heads") ?? heads,
                               ropeTheta: try double("rope_theta", default: 10_000),
                               normEps: try double("rms_norm_eps", default: 1e-6),
                               tieEmbeddings: bool("tie_word_embeddings", default: false))
        default:
            throw .unsupportedModelType(type.isEmpty ? "(none)" : type)
        }
        return shape
    }
}
