import ArgumentParser
import CLISupport
import Compute
import Foundation
import GPT
import Runtime
import Tokenizers

struct GPTSample: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gpt-sample",
        abstract: "Generate text from a checkpoint with the tokenizer that trained it, streaming tokens as they come.",
        discussion: "Same checkpoint, prompt, settings and seed: same text.")

    @Argument(help: "A checkpoint (.h5) written by gpt-train.") var checkpoint: String
    @Option(help: "Text to continue (default: a newline, or <|endoftext|> for BPE models).") var prompt: String?
    @Option(parsing: .unconditional, help: "Tokens to generate, 0 to 10M (default: 200).", transform: NumberArgument.whole(0...10_000_000))
    var tokens: Int = 200
    @Option(parsing: .unconditional, help: "Softmax temperature, 0 to 100 (default: 0.8); 0 takes the most likely token every time.",
            transform: NumberArgument.float(FlagRange(0...100)))
    var temperature: Float = 0.8
    @Option(name: .customLong("top-k"), parsing: .unconditional,
            help: "Sample among the k most likely tokens, 1 to 16777216 (default: 200).",
            transform: NumberArgument.whole(1...(1 << 24)))
    var topK: Int = 200
    @Option(parsing: .unconditional, help: "Seed of the sampling generator, 0 to 2^64 - 1 (default: 1).",
            transform: NumberArgument.whole(0...UInt64.max))
    var seed: UInt64 = 1
    @Flag(name: .customLong("no-cache"), help: "Recompute the whole window for every token (slower; for checking the cache).")
    var noCache = false
    @Option(parsing: .unconditional,
            help: "Tokens the model sees at once, 1 to the model's context (default: the recipe's training.seq_len, the window it was trained or imported to evaluate with; a longer sequence slides).",
            transform: NumberArgument.whole(1...(1 << 20)))
    var context: Int?
    @OptionGroup var threads: ThreadOption

    func run() throws {
        guard FileManager.default.fileExists(atPath: checkpoint) else {
            throw CommandFailure.usage("gpt-sample: \(checkpoint): no such file")
        }
        let loaded: LoadedCheckpoint
        do {
            // Room for a whole window in one pass (the prefill). The window is the recipe's training.seq_len unless
            // --context says: GPT-2's positions past it were never trained, and an imported Llama's context
            // (max_position_embeddings, 131072 for Llama 3.1) would need activations for as many tokens.
            loaded = try LoadedCheckpoint(path: checkpoint, threads: threads.count, maxBatch: 1, maxTime: context)
            if let unchecked = try loaded.tokenizerMatchesData() { Terminal.note("gpt-sample: note: \(checkpoint): \(unchecked)") }
        } catch { throw CommandFailure("gpt-sample: \(error)", exitCode: 1) }
        if let context, context > loaded.model.shape.seqLen {
            throw CommandFailure.usage("gpt-sample: --context \(context) is longer than the model's context (model.seq_len = "
                                       + "\(loaded.model.shape.seqLen) in \(checkpoint)); give at most \(loaded.model.shape.seqLen)")
        }
        let tokenizer = loaded.tokenizer
        var promptTokens: [Int32]
        do {
            if let prompt {
                promptTokens = try tokenizer.encode(Array(prompt.utf8))
            } else if let bpe = tokenizer as? BPETokenizer, let endOfText = bpe.endOfText {
                promptTokens = [endOfText]
            } else {
                promptTokens = try tokenizer.encode(Array("\n".utf8))
            }
        } catch { throw CommandFailure("gpt-sample: the prompt: \(error)", exitCode: 1) }
        if promptTokens.isEmpty { throw CommandFailure.usage("gpt-sample: the prompt encodes to no tokens") }

        let generator = Generator(model: loaded.model, useCache: !noCache)
        var sampler = TokenSampler(temperature: temperature, topK: topK, seed: seed)
        var output = UTF8StreamDecoder()
        let stdout = FileHandle.standardOutput
        // The rows past the tokenizer's vocabulary (padding to a multiple of 64) are never targets: skip them.
        func checked(_ logits: UnsafePointer<Float>, position: Int) throws -> UnsafePointer<Float> {
            do { try loaded.requireFinite(logits: logits, count: tokenizer.vocabSize, position: position) } catch {
                throw CommandFailure("gpt-sample: \(error)", exitCode: 1)
            }
            return logits
        }
        var logits = try checked(try generator.append(promptTokens), position: promptTokens.count - 1)
        if let prompt { stdout.write(Data(prompt.utf8)) }
        let start = DispatchTime.now().uptimeNanoseconds
        for i in 0..<tokens {
            let next = sampler.sample(logits, vocab: tokenizer.vocabSize)
            stdout.write(Data(output.push(tokenizer.decode([next])).utf8))
            if i + 1 < tokens { logits = try checked(try generator.append([next]), position: promptTokens.count + i) }
        }
        stdout.write(Data((output.finish() + "\n").utf8))
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9
        Terminal.note(String(format: "gpt-sample: %d tokens in %.2f s (%.0f tokens/s", tokens, seconds,
                             Double(tokens) / max(seconds, 1e-9)) + (noCache ? ", no cache)" : ")"))
    }
}

Main.relaunchWithFastestBLASCore()
Main.run(GPTSample.self)
