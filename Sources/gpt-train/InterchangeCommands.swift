import ArgumentParser
import CLISupport
import Foundation
import GPTShape
import Interchange
import Trainer

/// `gpt-train export CKPT --to hf -o DIR` / `--to llmc -o FILE` (docs/interchange.md).
struct Export: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Write a checkpoint as a Hugging Face folder (--to hf) or llm.c's model file (--to llmc, GPT-2 family only).",
        discussion: """
        hf: config.json, generation_config.json, model.safetensors and the checkpoint's tokenizer (tokenizer.json, \
        tokenizer_config.json, vocab.json + merges.txt); the padded vocabulary rows kept and suppressed in generation. \
        A gpt2-family checkpoint becomes a GPT2LMHeadModel (Conv1D weights [in, out]; zero biases for a bias-free \
        model), a llama-family one a LlamaForCausalLM (its own tensor names, nn.Linear [out, in], q/k/v_proj split \
        from the stacked matrix, lm_head when untied). llmc: llm.c's gpt2_124M.bin format (version 3, float32). \
        docs/interchange.md.
        """)

    @Argument(help: "A checkpoint (.h5).") var checkpoint: String
    @Option(help: "hf or llmc.") var to: String
    @Option(name: [.short, .customLong("output")], help: "The folder (hf) or file (llmc) to write.") var output: String
    @Flag(help: "Overwrite: write into a folder that holds files, or replace the llm.c file.") var force = false

    mutating func run() throws {
        guard ["hf", "llmc"].contains(to) else { throw CommandFailure.usage("gpt-train export: --to \(to): use hf or llmc") }
        let loaded = try openCheckpoint(checkpoint, threads: 1, maxBatch: 1, maxTime: 1)
        do {
            if to == "hf" {
                let written = try ModelExport.huggingFace(loaded, to: output, force: force)
                for note in written.notes { Terminal.note("note: \(note)") }
                Terminal.note("gpt-train export: \(checkpoint) (step \(loaded.state.step)) → \(output): "
                              + written.files.map { ($0 as NSString).lastPathComponent }.joined(separator: ", "))
            } else {
                try ModelExport.llmc(loaded, to: output, force: force)
                Terminal.note("gpt-train export: \(checkpoint) (step \(loaded.state.step)) → \(output) (llm.c model file, version 3)")
            }
        } catch {
            throw CommandFailure("gpt-train export: \(error)", exitCode: 1)
        }
    }
}

/// `gpt-train import HF_DIR -o CKPT.h5`.
struct Import: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import",
        abstract: "Turn a Hugging Face GPT2LMHeadModel or LlamaForCausalLM folder (config.json, model.safetensors, tokenizer) into a checkpoint.",
        discussion: """
        The checkpoint is at step 0 with zero AdamW moments; gpt-train eval, inspect, gpt-sample and \
        gpt-train RECIPE --init-from CKPT use it. Prepare data with the same tokenizer: \
        gpt-data prepare TEXT --tokenizer HF_DIR/tokenizer.json -o DATA. docs/interchange.md.
        """)

    @Argument(help: "The folder save_pretrained wrote.") var directory: String
    @Option(name: [.short, .customLong("output")], help: "The checkpoint to write (.h5).") var output: String
    @Option(help: "The tokenizer: a tokenizer.json, or a folder with tokenizer.json or vocab.json + merges.txt (default: the model folder).")
    var tokenizer: String?
    @Option(help: "A directory gpt-data prepared with this tokenizer, recorded as the checkpoint's data (then eval needs no --data).")
    var data: String?
    @Option(name: .customLong("seq-len"), parsing: .unconditional,
            help: "Window length of the checkpoint's recipe (training.seq_len), 1 to 1048576 (default: n_positions or max_position_embeddings, at most 1024).",
            transform: NumberArgument.whole(1...(1 << 20)))
    var seqLen: Int?
    @Flag(help: "Replace the output file if it exists.") var force = false

    mutating func run() throws {
        do {
            let summary = try ModelImport.huggingFace(directory, to: output, options: .init(
                tokenizer: tokenizer, data: data, seqLen: seqLen, force: force))
            let s = summary.shape
            let family = s.family == .llama
                ? "Llama (\(s.nKVHead) key/value heads, rope_theta \(s.ropeTheta), \(s.tieEmbeddings ? "tied" : "untied") head): " : ""
            Terminal.note("gpt-train import: \(directory) → \(output): \(family)\(s.nLayer) layers × \(s.nHead) heads × d_model \(s.dModel), "
                          + "d_ff \(s.dFF), context \(s.seqLen), vocabulary \(s.vocabSize) (tokenizer \(summary.tokenizerVocabulary)), "
                          + "\(summary.parameters) parameters" + (summary.dataPath.map { "; data \($0)" } ?? ""))
        } catch {
            throw CommandFailure("gpt-train import: \(error)", exitCode: 1)
        }
    }
}
