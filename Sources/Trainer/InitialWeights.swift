import Checkpoint
import Foundation
import GPT
import Recipe
import Tokenizers

/// A run that starts from given weights (`gpt-train RECIPE --init-from CKPT`): a checkpoint's model tensors (one
/// written by a run, or by `gpt-train import` from Hugging Face) replace the random initialisation. Only the
/// weights are taken: the step, the AdamW moments and the sampler start afresh as the recipe says.
public enum InitialWeights {
    /// Fills `model`'s parameters from the checkpoint at `path`, after checking that its model has the recipe's
    /// shape and its tokenizer is the data's (the same ids mean the same text).
    public static func load(_ path: String, into model: GPT, recipe: Recipe, tokenizer: any Tokenizer) throws {
        guard FileManager.default.fileExists(atPath: path) else {
            throw DataError(key: "--init-from", "\(path) does not exist", fix: "give a checkpoint (.h5) written by gpt-train or gpt-train import")
        }
        let (reader, source) = try CheckpointReader.openValidated(path)
        if source.model != recipe.model {
            let a = source.model, b = recipe.model
            let differences = [("n_layer", a.nLayer, b.nLayer), ("n_head", a.nHead, b.nHead), ("d_model", a.dModel, b.dModel),
                               ("d_ff", a.dFF, b.dFF), ("seq_len", a.seqLen, b.seqLen), ("vocab_size", a.vocabSize, b.vocabSize),
                               ("bias", a.bias ? 1 : 0, b.bias ? 1 : 0)]
                .filter { $0.1 != $0.2 }
                .map { "model.\($0.0) is \($0.0 == "bias" ? String($0.1 == 1) : String($0.1)) there and \($0.0 == "bias" ? String($0.2 == 1) : String($0.2)) here" }
            throw DataError(key: "model", "the weights of \(path) do not fit this recipe's model: " + differences.joined(separator: ", "),
                            fix: "copy the [model] section of the checkpoint's recipe (gpt-train inspect \(path))")
        }
        guard reader.tokenizer.utf8.elementsEqual(try tokenizer.jsonData()) else {
            throw DataError(key: "data.path", "the data's tokenizer is not the one \(path) was made with",
                            fix: "prepare the data with that tokenizer (gpt-data prepare TEXT --tokenizer TOKENIZER.json -o DIR)")
        }
        try reader.read(tensors: model.layout.checkpointTensors, parameters: model.parameters.base)
    }
}
