import Checkpoint
import Compute
import Corpus
import Durable
import Foundation
import GPT
import GPTShape
import Recipe
import Tokenizers
import Runtime

/// Export of a checkpoint to Hugging Face's GPT-2 files or llm.c's model file (docs/interchange.md).
public enum ModelExport {
    /// What an export wrote.
    public struct Written: Sendable {
        public var files: [String]
        /// Tokenizer files left out, and why (a character tokenizer has no vocab.json form).
        public var notes: [String]
    }

    /// Writes `checkpoint` as a Hugging Face model folder (`GPT2LMHeadModel` for the gpt2 family,
    /// `LlamaForCausalLM` for llama): config.json, generation_config.json,
    /// model.safetensors, and the checkpoint's tokenizer (tokenizer.json, tokenizer_config.json, and for
    /// byte-level tokenizers vocab.json and merges.txt).
    ///
    /// The vocabulary keeps the model's padded rows (config.json's vocab_size is the model's): every logit, and so
    /// the loss `gpt-train eval` reports, is what transformers computes; the padded ids, which no token has, are
    /// listed in generation_config.json's `suppress_tokens` so that `generate` never picks one.
    public static func huggingFace(_ checkpoint: LoadedCheckpoint, to directory: String, force: Bool) throws -> Written {
        let tokenizer = checkpoint.tokenizer
        let shape = checkpoint.model.shape
        let files = try HuggingFaceTokenizer.files(for: tokenizer, maxLength: shape.seqLen)
        let endOfText = (tokenizer as? BPETokenizer)?.endOfText.map { Int($0) }
        let dropout = checkpoint.recipe.training.dropout
        let layout = checkpoint.model.layout, parameters = checkpoint.model.parameters.base
        let configData: Data, generationData: Data, tensors: [Safetensors.Tensor]
        switch shape.family {
        case .gpt2:
            let config = GPT2Config(shape: shape, endOfText: endOfText, dropout: dropout)
            configData = config.jsonData()
            generationData = config.generationConfigData(suppress: tokenizer.vocabSize ..< shape.vocabSize)
            tensors = GPT2Weights.tensors(layout, parameters: parameters)
        case .llama:
            let config = LlamaConfig(shape: shape, endOfText: endOfText, dropout: dropout)
            configData = config.jsonData()
            generationData = GPT2Config.generationConfigData(bos: endOfText, eos: endOfText,
                                                             suppress: tokenizer.vocabSize ..< shape.vocabSize)
            tensors = LlamaWeights.tensors(layout, parameters: parameters)
        }
        try prepareDirectory(directory, force: force)
        func path(_ name: String) -> String { (directory as NSString).appendingPathComponent(name) }
        let metadata = ["format": "pt", "source": "swift-gpt gpt-train export", "checkpoint_step": String(checkpoint.state.step)]
        var written: [String] = []
        func write(_ data: Data, _ name: String) throws {
            try AtomicFile.write(data, to: path(name))
            written.append(path(name))
        }
        try write(Safetensors.encode(tensors, metadata: metadata), "model.safetensors")
        try write(configData, "config.json")
        try write(generationData, "generation_config.json")
        try write(files.tokenizerJSON, "tokenizer.json")
        try write(files.tokenizerConfig, "tokenizer_config.json")
        var notes: [String] = []
        if let vocab = files.vocabJSON, let merges = files.mergesText {
            try write(vocab, "vocab.json")
            try write(merges, "merges.txt")
        } else {
            notes.append("no vocab.json/merges.txt: GPT-2's files describe byte-level tokenizers, and this "
                         + "\(tokenizer.kind.rawValue) tokenizer is not one (tokenizer.json holds it exactly)")
        }
        return Written(files: written, notes: notes)
    }

    /// Writes `checkpoint` as llm.c's model file.
    public static func llmc(_ checkpoint: LoadedCheckpoint, to file: String, force: Bool) throws {
        try prepareFile(file, force: force)
        let data = try LLMCModelFile.encode(checkpoint.model.layout, parameters: checkpoint.model.parameters.base,
                                            vocabulary: checkpoint.tokenizer.vocabSize, file: checkpoint.path)
        try AtomicFile.write(data, to: file)
    }

    /// An output folder: created when missing; refused when it is a file, holds files (unless `force`), or is
    /// not writable.
    public static func prepareDirectory(_ path: String, force: Bool) throws {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) {
            guard isDirectory.boolValue else {
                throw InterchangeError(file: path, field: nil, "exists and is not a folder",
                                       fix: "give -o a folder path that does not exist yet (it is created)")
            }
            let contents = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
            if !contents.isEmpty && !force {
                throw InterchangeError(file: path, field: nil, "is not empty (\(contents.count) entr\(contents.count == 1 ? "y" : "ies"))",
                                       fix: "give -o a new or empty folder, or add --force to overwrite the files export writes there")
            }
        } else {
            do { try AtomicFile.createDirectory(atPath: path) } catch {
                throw InterchangeError(file: path, field: nil, "cannot be created (\(error))",
                                       fix: "give -o a folder in a place you can write")
            }
        }
        guard access(path, W_OK | X_OK) == 0 else {
            throw InterchangeError(file: path, field: nil, "is not writable", fix: "give -o a folder you can write, or change its permissions")
        }
    }

    /// An output file: refused when it is a folder, exists (unless `force`), or its folder is missing or not
    /// writable.
    public static func prepareFile(_ path: String, force: Bool) throws {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) {
            guard !isDirectory.boolValue else {
                throw InterchangeError(file: path, field: nil, "is a folder", fix: "give -o a file path, e.g. \(path)/model.bin")
            }
            guard force else {
                throw InterchangeError(file: path, field: nil, "exists", fix: "give -o a new file path, or add --force to replace it")
            }
        }
        let parent = (path as NSString).deletingLastPathComponent.isEmpty ? "." : (path as NSString).deletingLastPathComponent
        guard FileManager.default.fileExists(atPath: parent, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw InterchangeError(file: parent, field: nil, "does not exist", fix: "create the folder first, or give -o a path in an existing one")
        }
        guard access(parent, W_OK | X_OK) == 0 else {
            throw InterchangeError(file: parent, field: nil, "is not writable", fix: "give -o a path in a folder you can write")
        }
    }
}

/// Import of a Hugging Face GPT-2 or Llama model folder into a checkpoint (docs/interchange.md).
public enum ModelImport {
    public struct Options: Sendable {
        /// A tokenizer.json, or a folder with tokenizer.json or vocab.json + merges.txt (default: the model folder).
        public var tokenizer: String?
        /// A directory written by `gpt-data prepare` with this tokenizer, recorded as the checkpoint's data.
        public var data: String?
        /// training.seq_len of the checkpoint's recipe (the window `gpt-train eval` uses); default
        /// min(n_positions or max_position_embeddings, 1024).
        public var seqLen: Int?
        public var force = false
        public init(tokenizer: String? = nil, data: String? = nil, seqLen: Int? = nil, force: Bool = false) {
            self.tokenizer = tokenizer
            self.data = data
            self.seqLen = seqLen
            self.force = force
        }
    }

    public struct Summary: Sendable {
        public var shape: ModelShape
        public var parameters: Int
        public var tokenizerVocabulary: Int
        public var dataPath: String?
    }

    /// Reads `directory` (config.json, model.safetensors, a tokenizer) and writes checkpoint `output` at step 0,
    /// its AdamW moments zero, its recipe describing the model (and `options.data`, when given).
    public static func huggingFace(_ directory: String, to output: String, options: Options = Options()) throws -> Summary {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw InterchangeError(file: directory, field: nil, "is not a folder",
                                   fix: "give the folder save_pretrained wrote (config.json, model.safetensors, tokenizer files)")
        }
        func path(_ name: String) -> String { (directory as NSString).appendingPathComponent(name) }
        let configData: Data
        do { configData = try RegularFile.read(path("config.json")) } catch {
            throw InterchangeError(file: path("config.json"), field: nil, error == .missing ? "is missing" : error.description,
                                   fix: "save the model with save_pretrained(DIR)")
        }
        let modelType = ((try? JSONSerialization.jsonObject(with: configData)) as? [String: Any])?["model_type"] as? String
        let isLlama = modelType == "llama"
        let shapeFromConfig = isLlama ? try LlamaConfig.read(configData, file: path("config.json")).shape
            : try GPT2Config.read(configData, file: path("config.json")).shape
        let positionsKey = isLlama ? "max_position_embeddings" : "n_positions"
        let weightsPath = path("model.safetensors")
        guard FileManager.default.fileExists(atPath: weightsPath) else {
            let sharded = FileManager.default.fileExists(atPath: path("model.safetensors.index.json"))
            throw InterchangeError(file: weightsPath, field: nil,
                                   sharded ? "is missing: the model is sharded into several files" : "is missing",
                                   fix: sharded ? "save it as one file: model.save_pretrained(DIR, max_shard_size=\"100GB\")"
                                       : "save the weights as safetensors: model.save_pretrained(DIR) (pytorch_model.bin is not read)")
        }
        try ModelExport.prepareFile(output, force: options.force)
        let tokenizerPath = options.tokenizer ?? directory
        let tokenizer: BPETokenizer
        do { tokenizer = try HuggingFaceTokenizer.load(path: tokenizerPath) } catch let error as TokenizerError {
            throw InterchangeError(file: "\(error)", field: nil, "",
                                   fix: "give --tokenizer a byte-level BPE tokenizer.json, or a folder with vocab.json and merges.txt")
        }
        guard tokenizer.vocabSize <= shapeFromConfig.vocabSize else {
            throw InterchangeError(file: path("config.json"), field: "vocab_size",
                                   "is \(shapeFromConfig.vocabSize), fewer than the tokenizer's \(tokenizer.vocabSize) ids",
                                   fix: "import the tokenizer the model was trained with")
        }
        var shape = shapeFromConfig
        do { try shape.validate() } catch {
            throw InterchangeError(file: path("config.json"), field: "(shape)", "\(error)", fix: "correct config.json")
        }
        let layout = ParameterLayout(shape)
        let weights = try SafetensorsFile(contentsOf: weightsPath)
        let parameters = FloatStorage(count: layout.count)
        if isLlama {
            try LlamaWeights.load(weights, layout: layout, configFile: path("config.json"), into: parameters.base)
        } else {
            try GPT2Weights.load(weights, layout: layout, configFile: path("config.json"), into: parameters.base)
            shape.bias = true
        }
        let moments = FloatStorage(count: layout.count)

        var recipe = Recipe()
        recipe.model = shape
        let seqLen = options.seqLen ?? min(shape.seqLen, 1024)
        guard seqLen >= 1, seqLen <= shape.seqLen else {
            throw InterchangeError(file: path("config.json"), field: positionsKey,
                                   "is \(shape.seqLen), shorter than --seq-len \(seqLen)", fix: "give --seq-len at most \(shape.seqLen)")
        }
        var dataPath = "data"
        recipe.data = .init(path: dataPath, tokenizer: "bpe", valFraction: 0.1)
        if let data = options.data {
            let set: PreparedDataset
            do { set = try PreparedDataset(directory: data) } catch {
                throw InterchangeError(file: data, field: "--data", "\(error)", fix: "give a folder written by gpt-data prepare")
            }
            guard (try? set.tokenizer.jsonData()) == (try? tokenizer.jsonData()) else {
                throw InterchangeError(file: data, field: "tokenizer.json", "is not the tokenizer of \(tokenizerPath)",
                                       fix: "prepare the data with it: gpt-data prepare TEXT --tokenizer \(tokenizerPath) -o DIR")
            }
            dataPath = TrainingData.resolve(data, relativeTo: FileManager.default.currentDirectoryPath)
            recipe.data = .init(path: dataPath, tokenizer: set.meta.tokenizer, valFraction: set.meta.valFraction)
        }
        recipe.optimizer = .init(lr: 6e-4, minLR: 6e-5, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1, gradClip: 1)
        recipe.schedule = .init(warmupSteps: 0, decay: .cosine)
        recipe.training = .init(steps: 1, batchSize: 1, seqLen: seqLen, microBatch: 1, gradAccum: 1, devices: 1, seed: 0)
        recipe.eval = .init(interval: 1, iters: 1)
        recipe.checkpoint = .init(dir: "checkpoints", interval: 1, keep: 1)
        recipe.logging = .init(interval: 1)
        let n = shape.parameterCount.total, d = recipe.batchTokens
        recipe.plan = .init(flopsBudget: 6 * Double(n) * Double(d), fit: "manual", params: n, tokens: d, predictedLoss: 0)
        let text = RecipeWriter.write(recipe, header: [
            "Recipe of a model imported from \(directory) by gpt-train import.",
            "It describes the model; to train it further, write a recipe with the same [model] and run",
            "gpt-train RECIPE --init-from THIS_CHECKPOINT (docs/interchange.md).",
        ])
        let check = RecipeLoader.check(text: text, file: "\(output) (its /recipe)", tolerance: .infinity)
        guard check.recipe != nil else {
            throw InterchangeError(file: path("config.json"), field: "(shape)",
                                   "does not make a recipe this project accepts: " + check.errors.map(\.description).joined(separator: "; "),
                                   fix: "import a model within the recipe's bounds (docs/recipe-reference.md)")
        }
        let sampler = BatchSampler(seed: 0)
        let state = CheckpointState(
            step: 0, tokensSeen: 0, samplerRNG: sampler.rng.stateWords, windowsDrawn: 0, optimizerSteps: 0, seed: 0,
            threads: 1, blasCore: "imported", dataPath: dataPath, bestValLoss: nil, lastValLoss: nil, lastTrainLoss: nil)
        try CheckpointWriter.write(to: output, tensors: layout.checkpointTensors, parameters: parameters.base,
                                   m: moments.base, v: moments.base, state: state, recipe: text,
                                   tokenizer: String(decoding: try tokenizer.jsonData(), as: UTF8.self))
        return Summary(shape: shape, parameters: layout.count, tokenizerVocabulary: tokenizer.vocabSize,
                       dataPath: options.data.map { _ in dataPath })
    }
}
