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

    /// - Parameters: `maxBatch`, `maxTime`: the largest batch the model will run (default: the recipe's
    ///   micro-batch and sequence length); `fullContext` makes room for the model's whole context instead;
    ///   `verifyMoments` also reads and checks every AdamW moment (which using the model does not need).
    public init(path: String, threads: Int, maxBatch: Int? = nil, maxTime: Int? = nil, fullContext: Bool = false,
                verifyMoments: Bool = false) throws {
        self.path = path
        let (reader, recipe) = try CheckpointReader.openValidated(path)
        state = reader.state
        recipeText = reader.recipe
        self.recipe = recipe
        do { tokenizer = try TokenizerFile.load(Data(reader.tokenizer.utf8)) } catch {
            throw CheckpointError(file: path, reason: "its tokenizer does not read back: \(error)")
        }
        // What the checkpoint alone can say about its tokenizer: the kind its recipe names, and no more tokens
        // than the model has rows (`tokenizerMatchesData` compares it with the data it was trained on).
        guard tokenizer.kind.rawValue == recipe.data.tokenizer, tokenizer.vocabSize <= recipe.model.vocabSize else {
            throw CheckpointError(file: path, reason: "/tokenizer: a \(tokenizer.kind.rawValue) tokenizer of "
                                  + "\(tokenizer.vocabSize) tokens, but its recipe trains a \(recipe.data.tokenizer) "
                                  + "tokenizer into \(recipe.model.vocabSize) model rows. Fix: use a checkpoint written by "
                                  + "gpt-train (this one was altered)")
        }
        BLAS.pinToOneThread()
        let shape = recipe.shape
        let time = fullContext ? shape.seqLen : min(shape.seqLen, maxTime ?? recipe.training.seqLen)
        model = try GPT(shape: shape, maxBatch: maxBatch ?? recipe.training.microBatch, maxTime: time,
                    pool: ThreadPool(threads: threads))
        try reader.read(tensors: model.layout.checkpointTensors, parameters: model.parameters.base)
        if verifyMoments { try reader.verifyTensors(model.layout.checkpointTensors) }
    }

    /// The data the checkpoint was trained on, from the path it recorded (or `path`, when the data has moved),
    /// checked to still give the same tokenizer.
    public func trainingData(at path: String? = nil) throws -> TrainingData {
        var r = recipe
        r.data.path = path.map { TrainingData.resolve($0, relativeTo: FileManager.default.currentDirectoryPath) }
            ?? state.dataPath
        let data: TrainingData
        do { data = try TrainingData.load(r, relativeTo: "/") } catch let error as DataError where error.key == "data.path" {
            throw CheckpointError(file: self.path, reason: "its data \(r.data.path) cannot be read (\(error.message)); "
                                  + "if it moved, give its new place with --data")
        }
        guard (try? data.tokenizer.jsonData()) == (try? tokenizer.jsonData()) else {
            throw TokenizerMismatch(checkpoint: self.path, reason: "/tokenizer (\(tokenizer.kind.rawValue), \(tokenizer.vocabSize) "
                                  + "tokens) is not the tokenizer its data \(r.data.path) gives (\(data.tokenizer.kind.rawValue), "
                                  + "\(data.tokenizer.vocabSize) tokens): the checkpoint's tokenizer or the data changed "
                                  + "since training. Fix: use a checkpoint of this data, or restore the data it was trained on")
        }
        return data
    }

    /// Compares the checkpoint's tokenizer with the one its training data gives (`trainingData`), where the data
    /// still is: throws when they differ (a token would decode to the wrong text). Returns nil when they match, or
    /// why they could not be compared (the data moved or cannot be read), for a note.
    public func tokenizerMatchesData() throws -> String? {
        guard FileManager.default.fileExists(atPath: state.dataPath) else {
            return "its data \(state.dataPath) is gone, so its tokenizer was not compared with the data's"
        }
        do { _ = try trainingData() } catch let mismatch as TokenizerMismatch {
            throw mismatch
        } catch {
            return "its tokenizer was not compared with its data's: \(error)"
        }
        return nil
    }
}

/// Finite weights (every reader checks them) can still overflow float32 in the forward pass: weights near 3e38
/// make the logits ±inf and the loss NaN. Every user of a loaded model refuses such output the same way, naming
/// the checkpoint, instead of printing it (`eval --json` could not; `gpt-sample` printed "zzzz…").
public struct ActivationOverflow: Error, CustomStringConvertible {
    public var checkpoint: String
    /// What came out non-finite: "the val loss comes out nan", "the logits of token 3 are not finite".
    public var symptom: String
    public var description: String {
        "\(checkpoint): \(symptom): the model's activations overflow float32 (its weights are finite but too large). "
            + "Fix: use an earlier checkpoint of the run"
    }
}

extension LoadedCheckpoint {
    /// Mean cross-entropy over consecutive windows of `source` (`WindowEvaluation`) at the recipe's training context:
    /// `windows` of them, or by default the whole split up to a million tokens, at most what the split holds; a
    /// non-finite loss is an error naming `split`. `gpt-train eval` and `gpt-train sweep`'s final evaluation.
    public func meanLoss(on source: any TokenSequence, split: String, windows wanted: Int? = nil) throws
        -> (loss: Double, windows: Int, time: Int) {
        let time = recipe.training.seqLen
        let count = min(wanted ?? WindowEvaluation.defaultWindows(tokens: source.count, time: time),
                        WindowEvaluation.availableWindows(tokens: source.count, time: time))
        let loss = try WindowEvaluation.evaluate(model, on: source, windows: count, time: time)
        try requireFinite(loss: loss, split: split)
        return (loss, count, time)
    }

    /// Throws `ActivationOverflow` unless `loss` (of the named split) is finite.
    public func requireFinite(loss: Double, split: String) throws(ActivationOverflow) {
        guard loss.isFinite else { throw ActivationOverflow(checkpoint: path, symptom: "the \(split) loss comes out \(loss)") }
    }

    /// Throws `ActivationOverflow` unless the first `count` logits are finite; `position` names the token.
    public func requireFinite(logits: UnsafePointer<Float>, count: Int, position: Int) throws(ActivationOverflow) {
        for i in 0..<count where !logits[i].isFinite {
            throw ActivationOverflow(checkpoint: path, symptom: "the logits at position \(position) are not finite "
                                     + "(logit \(i) is \(logits[i]))")
        }
    }
}

/// A checkpoint whose tokenizer is not the one its data gives.
public struct TokenizerMismatch: Error, CustomStringConvertible {
    public var checkpoint: String
    public var reason: String
    public var description: String { "\(checkpoint): \(reason)" }
}

extension CheckpointExpectation {
    /// What a checkpoint written by a run of `recipe` holds.
    public init(_ recipe: Recipe) {
        self.init(tensors: ParameterLayout(recipe.shape).checkpointTensors, steps: recipe.training.steps,
                  seed: recipe.training.seed, context: recipe.model.seqLen)
    }
}

extension CheckpointReader {
    /// Opens a checkpoint and validates it against the recipe it carries (CheckpointValidation.swift): how every
    /// reader in this package opens one, before reading a tensor.
    public static func openValidated(_ path: String) throws -> (reader: CheckpointReader, recipe: Recipe) {
        let reader = try CheckpointReader(path: path)
        let recipe = try parseRecipe(reader.recipe, of: path)
        try reader.validate(against: CheckpointExpectation(recipe))
        return (reader, recipe)
    }
}

/// The evaluation `gpt-train eval` reports, defined so that any implementation can reproduce it: the split's
/// tokens t[0], t[1], ...; window k (k = 0, 1, ..., W−1) has inputs t[kT ..< kT+T] and targets
/// t[kT+1 ..< kT+T+1], T the recipe's training.seq_len; the result is the mean over all W·T positions of the
/// cross-entropy (natural log, softmax over every model.vocab_size logit) of the target given the inputs up to it.
public enum WindowEvaluation {
    /// Windows `gpt-train eval` uses by default: the whole split, up to a million tokens.
    public static func defaultWindows(tokens: Int, time: Int) -> Int {
        min(availableWindows(tokens: tokens, time: time), max(1, 1_000_000 / time))
    }

    /// Complete windows a split holds: ⌊(n − 1) / T⌋.
    public static func availableWindows(tokens: Int, time: Int) -> Int { max(0, (tokens - 1) / time) }

    public static func evaluate(_ model: GPT, on source: any TokenSequence, windows: Int, time: Int) throws -> Double {
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
            total += Double(try model.forward(tokens: tokens, targets: targets, batch: b, time: time,
                                              weightsUnchanged: k > 0)) * Double(b)
            k += b
        }
        return total / Double(windows)
    }
}
