import Checkpoint
import Compute
import Corpus
import Foundation
import GPT
import Recipe
import Tokenizers

/// A checkpoint opened for use outside training: its recipe, its tokenizer, and a model holding its weights.
public final class LoadedCheckpoint {
    public let path: String
    public let state: CheckpointState
    public let recipe: Recipe
    public let recipeText: String
    public let tokenizer: any Tokenizer
    public let model: GPT
    public let savedTensors: [(name: String, shape: [Int])]

    /// - Parameters: `maxBatch`, `maxTime`: the largest batch the model will run (default: the recipe's
    ///   micro-batch and sequence length).
    public init(path: String, threads: Int, maxBatch: Int? = nil, maxTime: Int? = nil) throws {
        self.path = path
        let reader = try CheckpointReader(path: path)
        state = reader.state
        recipeText = reader.recipe
        let check = RecipeLoader.check(text: reader.recipe, file: "\(path):/recipe", tolerance: .infinity)
        guard let recipe = check.recipe else {
            throw CheckpointError(file: path, reason: "its recipe does not read back: "
                                  + check.errors.map(\.description).joined(separator: "; "))
        }
        self.recipe = recipe
        do { tokenizer = try TokenizerFile.load(Data(reader.tokenizer.utf8)) } catch {
            throw CheckpointError(file: path, reason: "its tokenizer does not read back: \(error)")
        }
        savedTensors = try reader.modelTensors()
        BLAS.pinToOneThread()
        let config = GPTConfig(recipe)
        model = GPT(config: config, maxBatch: maxBatch ?? recipe.training.microBatch,
                    maxTime: min(config.seqLen, maxTime ?? recipe.training.seqLen), pool: ThreadPool(threads: threads))
        let tensors = model.layout.tensors.map { CheckpointTensor(name: $0.name, shape: $0.shape, offset: $0.offset) }
        try reader.read(tensors: tensors, parameters: model.parameters.base)
    }

    /// The context length (model.seq_len) of a checkpoint's model, without loading its weights.
    public static func context(of path: String) throws -> Int {
        let reader = try CheckpointReader(path: path)
        guard let recipe = RecipeLoader.check(text: reader.recipe, file: path, tolerance: .infinity).recipe else {
            throw CheckpointError(file: path, reason: "its recipe does not read back")
        }
        return recipe.model.seqLen
    }

    /// The data the checkpoint was trained on, from the path it recorded, checked to still give the same
    /// tokenizer.
    public func trainingData() throws -> TrainingData {
        var r = recipe
        r.data.path = state.dataPath
        let data = try TrainingData.load(r, relativeTo: "/")
        guard (try? data.tokenizer.jsonData()) == (try? tokenizer.jsonData()) else {
            throw CheckpointError(file: path, reason: "\(state.dataPath) no longer gives the tokenizer this model was trained with")
        }
        return data
    }
}

/// The evaluation `gpt-train eval` reports, defined so that any implementation can reproduce it: the split's
/// tokens t[0], t[1], ...; window k (k = 0, 1, ..., W−1) has inputs t[kT ..< kT+T] and targets
/// t[kT+1 ..< kT+T+1], T the recipe's training.seq_len; the result is the mean over all W·T positions of the
/// cross-entropy (natural log, softmax over every model.vocab_size logit) of the target given the inputs up to it.
public enum WindowEvaluation {
    /// Complete windows a split holds: ⌊(n − 1) / T⌋.
    public static func availableWindows(tokens: Int, time: Int) -> Int { max(0, (tokens - 1) / time) }

    public static func evaluate(_ model: GPT, on source: any TokenSequence, windows: Int, time: Int) -> Double {
        let batch = model.maxBatch
        let tokens = UnsafeMutablePointer<Int32>.allocate(capacity: batch * time)
        let targets = UnsafeMutablePointer<Int32>.allocate(capacity: batch * time)
        defer {
            tokens.deallocate()
            targets.deallocate()
        }
        var total = 0.0
        var k = 0
        while k < windows {
            let b = min(batch, windows - k)
            for i in 0..<b {
                source.read((k + i) * time, time, into: tokens + i * time)
                source.read((k + i) * time + 1, time, into: targets + i * time)
            }
            total += Double(model.forward(tokens: tokens, targets: targets, batch: b, time: time)) * Double(b)
            k += b
        }
        return total / Double(windows)
    }
}
