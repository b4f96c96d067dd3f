import Checkpoint
import Compute
import Foundation
import GPT
import GPTShape
import Recipe
import Tokenizers

/// A run that starts from given weights (`gpt-train RECIPE --init-from CKPT`): a checkpoint's model tensors (one
/// written by a run, or by `gpt-train import` from Hugging Face) replace the random initialisation. Only the
/// weights are taken: the step, the AdamW moments and the sampler start afresh as the recipe says.
///
/// The recipe's model must be the checkpoint's, with two exceptions that lose nothing: a larger `vocab_size` (the
/// planner pads GPT-2's 50257 to 50304; the extra rows keep their random initialisation, and no token of the
/// tokenizer uses them), and a shorter `seq_len` (the first positions' embeddings are kept, as nanoGPT's
/// `crop_block_size` does).
public enum InitialWeights {
    /// Fills `model`'s parameters from the checkpoint at `path`, after checking that its model fits the recipe's
    /// shape and its tokenizer is the data's (the same ids mean the same text).
    public static func load(_ path: String, into model: GPT, recipe: Recipe, tokenizer: any Tokenizer) throws {
        guard FileManager.default.fileExists(atPath: path) else {
            throw DataError(key: "--init-from", "\(path) does not exist", fix: "give a checkpoint (.h5) written by gpt-train or gpt-train import")
        }
        let (reader, source) = try CheckpointReader.openValidated(path)
        let a = source.model, b = recipe.model
        var differences = [("n_layer", a.nLayer, b.nLayer), ("n_head", a.nHead, b.nHead), ("d_model", a.dModel, b.dModel),
                           ("d_ff", a.dFF, b.dFF)]
            .filter { $0.1 != $0.2 }
            .map { "model.\($0.0) is \($0.1) there and \($0.2) here" }
        if a.bias != b.bias { differences.append("model.bias is \(a.bias) there and \(b.bias) here") }
        if b.vocabSize < a.vocabSize {
            differences.append("model.vocab_size is \(a.vocabSize) there and \(b.vocabSize) here (it may grow, not shrink)")
        }
        if b.seqLen > a.seqLen {
            differences.append("model.seq_len is \(a.seqLen) there and \(b.seqLen) here (it may shrink, not grow)")
        }
        guard differences.isEmpty else {
            throw DataError(key: "model", "the weights of \(path) do not fit this recipe's model: " + differences.joined(separator: ", "),
                            fix: "copy the [model] section of the checkpoint's recipe (gpt-train inspect \(path))")
        }
        guard reader.tokenizer.utf8.elementsEqual(try tokenizer.jsonData()) else {
            throw DataError(key: "data.path", "the data's tokenizer is not the one \(path) was made with",
                            fix: "prepare the data with that tokenizer (gpt-data prepare TEXT --tokenizer TOKENIZER.json -o DIR)")
        }
        if a == b {
            try reader.read(tensors: model.layout.checkpointTensors, parameters: model.parameters.base)
            return
        }
        let sourceLayout = ParameterLayout(a)
        let weights = FloatStorage(count: sourceLayout.count)
        try reader.read(tensors: sourceLayout.checkpointTensors, parameters: weights.base)
        for tensor in model.layout.tensors {
            guard let from = sourceLayout.tensor(named: tensor.name) else { continue }
            // The embeddings' first rows (all of the checkpoint's tokens; the recipe's positions); the rest as is.
            let count = min(tensor.count, from.count)
            (model.parameters.base + tensor.offset).update(from: weights.base + from.offset, count: count)
        }
    }
}
