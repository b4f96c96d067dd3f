import Foundation
import GPTShape
import Compute
import Recipe
import TestFixtures
import XCTest

/// gpt-plan as a user meets it: output, exit statuses, files.
final class PlanCommandTests: XCTestCase {
    let device = ["--device-flops", "4e11", "--device-memory", "24GiB"]

    func testJSONHasExactlyTheDocumentedKeys() throws {
        let out = try Tool.run("gpt-plan", ["--flops", "1e20", "--json"] + device)
        XCTAssertEqual(out.status, 0, out.stderr)
        let object = try JSONSerialization.jsonObject(with: Data(out.stdout.utf8)) as! [String: Any]
        XCTAssertEqual(Set(object.keys), ["flops", "fit", "params", "non_embedding_params", "tokens", "tokens_per_param",
                                          "predicted_loss", "model", "flops_per_token", "batch_tokens", "batch_sequences",
                                          "learning_rate", "min_learning_rate", "warmup_steps", "steps", "memory_bytes",
                                          "rationale", "hardware", "layout", "memory_per_device", "time_seconds",
                                          "device_hours", "cost"])
        XCTAssertEqual(Set((object["hardware"] as! [String: Any]).keys), ["name", "memory_bytes", "peak_flops", "devices", "precision"])
        XCTAssertEqual(Set((object["layout"] as! [String: Any]).keys),
                       ["data_parallel", "tensor_parallel", "pipeline_parallel", "zero_stage", "recompute",
                        "micro_batch", "grad_accum"])
        let memory = object["memory_per_device"] as! [String: Double]
        XCTAssertEqual(Set(memory.keys), ["weights", "gradients", "optimizer", "activations", "other", "total"])
        XCTAssertEqual(memory["total"]!, memory["weights"]! + memory["gradients"]! + memory["optimizer"]!
                       + memory["activations"]! + memory["other"]!, accuracy: 1)
        XCTAssertEqual(memory["total"], object["memory_bytes"] as? Double)
        XCTAssertTrue(object["cost"] is NSNull)
        let hardware = object["hardware"] as! [String: Any]
        XCTAssertEqual(hardware["name"] as? String, "cpu")
        XCTAssertEqual(hardware["memory_bytes"] as? Double, 24 * 1024 * 1024 * 1024)
        XCTAssertEqual(hardware["peak_flops"] as? Double, 4e11)
        XCTAssertEqual(Set((object["model"] as! [String: Any]).keys),
                       ["n_layer", "n_head", "d_model", "d_ff", "seq_len", "vocab_size"])
        XCTAssertEqual(object["fit"] as? String, "epoch")
        XCTAssertEqual((object["tokens_per_param"] as! Double), 23, accuracy: 0.6)
        XCTAssertEqual((object["batch_tokens"] as! Double) / 1.02e6, 1, accuracy: 0.05)
        XCTAssertFalse((object["rationale"] as! [String]).isEmpty)
    }

    func testTableNamesARuleForEveryNumber() throws {
        let out = try Tool.run("gpt-plan", ["--flops", "1e20"] + device)
        XCTAssertEqual(out.status, 0, out.stderr)
        for rule in ["DeepSeek LLM", "C / (6N)", "epoch fit", "counted from the shape", "375M tokens", "10% of peak"] {
            XCTAssertTrue(out.stdout.contains(rule), "missing \(rule) in\n\(out.stdout)")
        }
    }

    func testNonsenseIsAClearErrorWithStatus2() throws {
        for (args, words) in [(["--flops=-1"], "must be positive"), (["--flops", "abc"], "not a number"),
                              (["--flops", "1e10"], "smallest GPT"), ([], "exactly one of"),
                              (["--flops", "1e20", "--fit", "magic"], "'magic' is invalid for '--fit <fit>'"),
                              (["--flops", "1e20", "--params", "1M"], "exactly one of")] {
            let out = try Tool.run("gpt-plan", args + device)
            XCTAssertEqual(out.status, 2, "\(args): \(out.stdout)")
            XCTAssertTrue(out.stderr.contains(words), "\(args): \(out.stderr)")
        }
    }

    /// Issue 14: huge targets trapped (SIGILL), negative numbers were "Missing value", and --val-fraction was only
    /// checked with -o.
    func testOutOfRangeNumbersAreClearErrors() throws {
        for (args, words) in [(["--params", "1e24"], "largest shape"), (["--tokens", "1e25"], "largest shape"),
                              (["--flops", "1e50"], "largest shape"),
                              (["--flops", "-1e18"], "'-1e18' is invalid for '--flops <flops>': out of range"),
                              (["--flops", "1e20", "--seq-len", "-5"], "'-5' is invalid for '--seq-len <seq-len>': out of range"),
                              (["--flops", "1e20", "--devices", "-1"], "'-1' is invalid for '--devices <devices>': out of range"),
                              (["--flops", "1e20", "--devices", "0"], "'0' is invalid for '--devices <devices>': out of range"),
                              (["--flops", "1e20", "--val-fraction", "2"], "'2' is invalid for '--val-fraction <val-fraction>': out of range"),
                              (["--flops", "1e20", "--zero-stage", "4", "--gpu", "a100-80gb"], "'4' is invalid for '--zero-stage <zero-stage>': out of range"),
                              (["--flops", "1e20", "--gpu", "tpu"], "'tpu' is invalid for '--gpu <gpu>'"),
                              (["--flops", "1e24", "--days", "0.001"], "no device count finishes within 0.001 days"),
                              (["--flops", "1e24", "--days", "-3"], "'-3' is invalid for '--days <days>': out of range")] {
            let out = try Tool.run("gpt-plan", args)
            XCTAssertEqual(out.status, 2, "\(args): \(out.stdout) \(out.stderr)")
            XCTAssertTrue(out.stderr.contains(words), "\(args): \(out.stderr)")
        }
    }

    /// Issue 8: Chinchilla's 10B row and Gopher's budget plan with no hardware named, on H100s, and say so.
    /// Issue 23: a budget whose compute-optimal N* is below the smallest shape (1e14: N* ≈ 717K, the smallest GPT
    /// with vocabulary 50304 and context 32 has 1.62M) plans that shape on this machine, D = C/(6N), and says what
    /// it costs by the fit; a budget that cannot train even that shape for 100 steps of one sequence is refused.
    func testBudgetsBelowTheSmallestShapePlanItHere() throws {
        for (budget, ratio) in [("1e14", "×2.3 the compute-optimal size"), ("3e13", "×4.2 the compute-optimal size")] {
            let out = try Tool.run("gpt-plan", ["--flops", budget, "--json"])
            XCTAssertEqual(out.status, 0, out.stderr)
            let object = try JSONSerialization.jsonObject(with: Data(out.stdout.utf8)) as! [String: Any]
            XCTAssertEqual((object["hardware"] as! [String: Any])["name"] as? String, "cpu")
            XCTAssertEqual(object["params"] as? Int, 1_623_136)
            // D = C/(6N) with the smallest shape's N.
            XCTAssertEqual(object["tokens"] as! Double, Double(budget)! / (6 * 1_623_136), accuracy: 1)
            let rationale = (object["rationale"] as! [String]).joined(separator: "\n")
            for words in ["below the smallest GPT with vocabulary 50304 and context 32", ratio, "L(N*, D*)"] {
                XCTAssertTrue(rationale.contains(words), "\(budget): missing \(words) in\n\(rationale)")
            }
        }
        // 6·N·max(N, 100·T) = 6 · 1623136² = 1.58e13 FLOPs: less trains the smallest model on fewer tokens than it
        // has parameters.
        for budget in ["1.5e13", "1e10"] {
            let refused = try Tool.run("gpt-plan", ["--flops", budget])
            XCTAssertEqual(refused.status, 2, refused.stdout)
            for words in ["smallest GPT with vocabulary 50304 and context 32 has 1.62M", "fewer tokens than it has parameters",
                          "--flops of at least 1.6e+13"] {
                XCTAssertTrue(refused.stderr.contains(words), "\(budget): missing \(words) in \(refused.stderr)")
            }
        }
        XCTAssertEqual(try Tool.run("gpt-plan", ["--flops", "1.6e13"]).status, 0)
    }

    func testLargeBudgetsPlanOnGPUs() throws {
        for budget in ["1.23e22", "5.76e23", "3.85e24"] {
            let out = try Tool.run("gpt-plan", ["--flops", budget] + device)
            XCTAssertEqual(out.status, 2, "24 GiB of CPU memory cannot hold \(budget): \(out.stdout)")
            XCTAssertTrue(out.stderr.contains("no layout of 1 cpu device fits"), out.stderr)
            let auto = try Tool.run("gpt-plan", ["--flops", budget, "--json"])
            XCTAssertEqual(auto.status, 0, auto.stderr)
            let object = try JSONSerialization.jsonObject(with: Data(auto.stdout.utf8)) as! [String: Any]
            XCTAssertEqual((object["hardware"] as! [String: Any])["name"] as? String, "h100-sxm-80gb")
            XCTAssertTrue((object["rationale"] as! [String]).contains { $0.contains("does not fit") || $0.contains("would need") })
        }
        let priced = try Tool.run("gpt-plan", ["--flops", "1e23", "--gpu", "a100-80gb", "--devices", "auto", "--days", "30",
                                               "--price-per-device-hour", "2", "--compare-layouts"])
        XCTAssertEqual(priced.status, 0, priced.stderr)
        for words in ["a100-80gb", "device_hours", "cost", "Fastest layouts on", "layouts evaluated"] {
            XCTAssertTrue(priced.stdout.contains(words), "missing \(words) in \(priced.stdout)")
        }
        let forced = try Tool.run("gpt-plan", ["--flops", "1.23e22", "--gpu", "h100-sxm-80gb", "--devices", "1",
                                               "--zero-stage", "0"])
        XCTAssertEqual(forced.status, 2)
        XCTAssertTrue(forced.stderr.contains("no layout of 1 h100-sxm-80gb device fits"), forced.stderr)
        XCTAssertTrue(forced.stderr.contains("usable"), forced.stderr)
        // The layout and the hardware go into the recipe, which passes check.
        let dir = try Fixtures.directory("plan-layout")
        let sharded = try Tool.run("gpt-plan", ["--flops", "1.23e22", "--gpu", "h100-sxm-80gb", "--devices", "8",
                                                "--tensor-parallel", "2", "-o", "r.toml"], in: dir)
        XCTAssertEqual(sharded.status, 0, sharded.stderr)
        let written = try String(contentsOfFile: "\(dir)/r.toml", encoding: .utf8)
        for line in ["tensor_parallel = 2\n", "devices = 8\n", "[hardware]\n", "name = \"h100-sxm-80gb\"\n"] {
            XCTAssertTrue(written.contains(line), "missing \(line) in \(written)")
        }
        let checked = try Tool.run("gpt-plan", ["check", "r.toml"], in: dir)
        XCTAssertEqual(checked.status, 0, checked.stdout + checked.stderr)
        let list = try Tool.run("gpt-plan", ["--gpu", "list"])
        XCTAssertEqual(list.status, 0)
        for name in ["a100-40gb", "a100-80gb", "h100-sxm-80gb", "h200-141gb", "mi300x", "cpu"] {
            XCTAssertTrue(list.stdout.contains(name), list.stdout)
        }
    }

    func testRecipeSettingsAreCheckedAsUsageErrors() throws {
        let dir = try Fixtures.directory("plan-flags")
        for (flag, value) in [("--val-fraction", "1.5"), ("--seed=-1", nil), ("--tokenizer", "words")] {
            let args = ["--flops", "3e15", "--vocab", "65", "-o", "r.toml", flag] + (value.map { [$0] } ?? []) + device
            let out = try Tool.run("gpt-plan", args, in: dir)
            XCTAssertEqual(out.status, 2, "\(flag): \(out.stderr)")
            XCTAssertTrue(out.stderr.contains(flag.split(separator: "=")[0]), out.stderr)
            XCTAssertFalse(FileManager.default.fileExists(atPath: "\(dir)/r.toml"))
        }
    }

    /// Rule and mode names are parsed by argument-parser: a bad one is a usage error (status 2) naming the flag and
    /// every choice, before anything is planned or written.
    func testRuleAndModeNamesAreCheckedAsUsageErrors() throws {
        let dir = try Fixtures.directory("plan-names")
        let cases: [([String], String, String)] = [
            (["--batch-rule", "chinchilla"], "--batch-rule", "'deepseek', 'kaplan' or 'step-law'"),
            (["--lr-rule", "cosine"], "--lr-rule", "'deepseek', 'kaplan', 'step-law' or 'reference'"),
            (["--lr-rule", "reference", "--reference-batch", "0.5M", "--reference-lr", "6e-4", "--lr-scaling", "cube"],
             "--lr-scaling", "'sqrt' and 'linear'"),
            (["--recompute", "half"], "--recompute", "'none', 'selective' or 'full'"),
            (["--tokenizer", "words"], "--tokenizer", "'char', 'byte' or 'bpe'"),
            (["--fit", "magic"], "--fit", "'epoch', 'hoffmann', 'tokens-per-param', 'llama3' or 'SWEEP/fit.json'"),
            (["--gpu", "tpu"], "--gpu", "one of the following:\n  - a100-40gb\n  - a100-80gb\n  - h100-sxm-80gb\n"
                + "  - h200-141gb\n  - mi300x\n  - cpu\n  - list"),
        ]
        for (flags, flag, choices) in cases {
            let out = try Tool.run("gpt-plan", ["--flops", "3e15", "--vocab", "65", "-o", "r.toml"] + flags + device, in: dir)
            XCTAssertEqual(out.status, 2, "\(flags): \(out.stderr)")
            XCTAssertTrue(out.stderr.contains("'\(flags[flags.count - 1])' is invalid for '\(flag)"), out.stderr)
            XCTAssertTrue(out.stderr.contains(choices), out.stderr)
            XCTAssertFalse(FileManager.default.fileExists(atPath: "\(dir)/r.toml"))
        }
        let sweep = try Tool.run("gpt-plan", ["sweep", "--flops", "2e10", "-o", "sw", "--tokenizer", "words"], in: dir)
        XCTAssertEqual(sweep.status, 2, sweep.stderr)
        XCTAssertTrue(sweep.stderr.contains("'words' is invalid for '--tokenizer"), sweep.stderr)
        XCTAssertTrue(sweep.stderr.contains("'char', 'byte' or 'bpe'"), sweep.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(dir)/sw"))
    }

    func testInverseQuestionsAndComparisons() throws {
        let byParams = try Tool.run("gpt-plan", ["--params", "124M", "--json"] + device)
        XCTAssertEqual(byParams.status, 0, byParams.stderr)
        let p = try JSONSerialization.jsonObject(with: Data(byParams.stdout.utf8)) as! [String: Any]
        XCTAssertEqual((p["params"] as! Double) / 124e6, 1, accuracy: 0.03)
        let byTokens = try Tool.run("gpt-plan", ["--tokens", "2e10", "--json"] + device)
        XCTAssertEqual((try JSONSerialization.jsonObject(with: Data(byTokens.stdout.utf8)) as! [String: Any])["tokens"] as? Double, 2e10)
        let compared = try Tool.run("gpt-plan", ["--flops", "1e21", "--compare-fits", "--device-flops", "4e11", "--device-memory", "80GiB"])
        XCTAssertEqual(compared.status, 0, compared.stderr)
        for fit in ["epoch", "hoffmann", "tokens-per-param", "llama3"] { XCTAssertTrue(compared.stdout.contains(fit)) }
    }

    func testWrittenRecipePassesCheck() throws {
        let dir = try Fixtures.directory("plan-out")
        let out = try Tool.run("gpt-plan", ["--flops", "3e15", "--vocab", "65", "--tokenizer", "char", "-o", "r.toml"] + device, in: dir)
        XCTAssertEqual(out.status, 0, out.stderr)
        let files = try FileManager.default.contentsOfDirectory(atPath: dir)
        XCTAssertEqual(files, ["r.toml"], "no temporary file is left behind")
        let check = try Tool.run("gpt-plan", ["check", "r.toml"], in: dir)
        XCTAssertEqual(check.status, 0, check.stdout)
        XCTAssertTrue(check.stdout.contains("r.toml: ok"), check.stdout)
    }

    /// `gpt-plan check` takes every recompute mode on `[hardware] cpu`, and the memory it needs follows the mode:
    /// a micro-batch that fits this machine (90% of its RAM, as gpt-train counts) only with full recomputation is
    /// refused without it, naming the fix.
    func testCheckAcceptsRecomputeOnCPUsAndItsMemoryFollowsTheMode() throws {
        let dir = try Fixtures.directory("check-recompute")
        var o = Fixtures.Options()
        o.nLayer = 12
        o.dModel = 256
        o.nHead = 4
        o.seqLen = 1024
        // The smallest micro-batch whose memory with selective recomputation passes 90% of this machine's RAM; full
        // recomputation keeps about a seventh of them.
        let shape = ModelShape(nLayer: 12, nHead: 4, dModel: 256, dFF: 1024, seqLen: 1024, vocabSize: o.vocabSize, bias: o.bias)
        func needs(_ b: Int, _ mode: Recompute) -> Double { shape.trainingMemoryBytes(microBatch: b, recompute: mode) }
        let usable = 0.9 * Double(CPU.memoryBytes)
        // (Selective keeps a little less than none: the threshold is its.)
        let perSequence = needs(2, .selective) - needs(1, .selective)
        o.microBatch = Int(((usable - (needs(1, .selective) - perSequence)) / perSequence).rounded(.up)) + 1
        XCTAssertGreaterThan(needs(o.microBatch, .selective), usable)
        XCTAssertGreaterThan(needs(o.microBatch, .none), usable)
        XCTAssertLessThan(needs(o.microBatch, .full), usable)
        let hardware = "\n[hardware]\nname = \"cpu\"\ndevice_memory = \(CPU.memoryBytes)\ndevice_flops = 1e11\nmfu = 0.5\n"
        for mode in Recipe.Recompute.allCases {
            o.recompute = mode
            let recipe = try Fixtures.recipe(in: dir, name: "\(mode).toml", o)
            try (try String(contentsOfFile: recipe, encoding: .utf8) + hardware).write(toFile: recipe, atomically: true, encoding: .utf8)
            let check = try Tool.run("gpt-plan", ["check", recipe])
            if mode == .full {
                XCTAssertEqual(check.status, 0, check.stdout + check.stderr)
            } else {
                XCTAssertEqual(check.status, 1, check.stdout + check.stderr)
                XCTAssertTrue(check.stdout.contains("activations (recompute \"\(mode)\")")
                              && check.stdout.contains("set training.recompute = \"full\""), check.stdout)
            }
        }
    }

    func testCheckExitStatuses() throws {
        let dir = try Fixtures.directory("check")
        let good = try Fixtures.recipe(in: dir)
        var text = try String(contentsOfFile: good, encoding: .utf8)
        text = text.replacingOccurrences(of: "lr = 0.003", with: "lr = -1.0")
        text = text.replacingOccurrences(of: "steps = 30", with: "steps = 60")
        text += "\n[extra]\nx = 1\n"
        try text.write(toFile: "\(dir)/bad.toml", atomically: true, encoding: .utf8)

        let ok = try Tool.run("gpt-plan", ["check", good])
        XCTAssertEqual(ok.status, 0, ok.stdout)
        let bad = try Tool.run("gpt-plan", ["check", good, "\(dir)/bad.toml"])
        XCTAssertEqual(bad.status, 1, bad.stdout)
        for key in ["optimizer.lr", "extra"] {
            XCTAssertTrue(bad.stdout.contains("bad.toml:") && bad.stdout.contains(key), bad.stdout)
        }
        let missing = try Tool.run("gpt-plan", ["check", "\(dir)/nope.toml"])
        XCTAssertEqual(missing.status, 2)
        XCTAssertTrue(missing.stderr.contains("nope.toml"), missing.stderr)
    }

    /// What CI runs over the shipped recipes.
    func testShippedRecipesPassCheck() throws {
        let recipes = try FileManager.default.contentsOfDirectory(atPath: "\(Tool.repository)/recipes")
            .filter { $0.hasSuffix(".toml") }.map { "\(Tool.repository)/recipes/\($0)" }
        let out = try Tool.run("gpt-plan", ["check"] + recipes)
        XCTAssertEqual(out.status, 0, out.stdout + out.stderr)
    }
}
