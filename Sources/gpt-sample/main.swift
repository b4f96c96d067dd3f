import ArgumentParser
import CLISupport
import Compute
import Foundation
import GPT
import Tokenizers
import Trainer

struct GPTSample: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gpt-sample",
        abstract: "Generate text from a checkpoint with the tokenizer that trained it, streaming tokens as they come.",
        discussion: "Same checkpoint, prompt, settings and seed: same text.")

    @Argument(help: "A checkpoint (.h5) written by gpt-train.") var checkpoint: String
    @Option(help: "Text to continue (default: a newline, or <|endoftext|> for BPE models).") var prompt: String?
    @Option(help: "Tokens to generate.") var tokens: Int = 200
    @Option(help: "Softmax temperature; 0 takes the most likely token every time.") var temperature: Float = 0.8
    @Option(name: .customLong("top-k"), help: "Sample among the k most likely tokens.") var topK: Int = 200
    @Option(help: "Seed of the sampling generator.") var seed: UInt64 = 1
    @Flag(name: .customLong("no-cache"), help: "Recompute the whole window for every token (slower; for checking the cache).")
    var noCache = false
    @Option(help: "Threads.") var threads: Int = CPU.count

    func run() throws {
        guard tokens >= 0, topK >= 1, temperature >= 0, temperature.isFinite, threads >= 1 else {
            throw CommandFailure.usage("gpt-sample: --tokens ≥ 0, --top-k ≥ 1, --temperature ≥ 0, --threads ≥ 1")
        }
        guard FileManager.default.fileExists(atPath: checkpoint) else {
            throw CommandFailure.usage("gpt-sample: \(checkpoint): no such file")
        }
        let loaded: LoadedCheckpoint
        do {
            // Room for a whole context window in one pass (the prefill).
            loaded = try LoadedCheckpoint(path: checkpoint, threads: threads, maxBatch: 1, fullContext: true)
        } catch { throw CommandFailure("gpt-sample: \(error)", exitCode: 1) }
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
        if let prompt { stdout.write(Data(prompt.utf8)) }
        var logits = try generator.append(promptTokens)
        let start = DispatchTime.now().uptimeNanoseconds
        for i in 0..<tokens {
            // The rows past the tokenizer's vocabulary (padding to a multiple of 64) are never targets: skip them.
            let next = sampler.sample(logits, vocab: tokenizer.vocabSize)
            stdout.write(Data(output.push(tokenizer.decode([next])).utf8))
            if i + 1 < tokens { logits = try generator.append([next]) }
        }
        stdout.write(Data((output.finish() + "\n").utf8))
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9
        Terminal.note(String(format: "gpt-sample: %d tokens in %.2f s (%.0f tokens/s", tokens, seconds,
                             Double(tokens) / max(seconds, 1e-9)) + (noCache ? ", no cache)" : ")"))
    }
}

Main.relaunchWithFastestBLASCore()
Main.run(GPTSample.self)
