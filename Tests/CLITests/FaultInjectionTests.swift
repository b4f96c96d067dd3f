import CHDF5
import Checkpoint
import Foundation
import TestFixtures
import Trainer
import XCTest

/// Issue 27, round 2 of fault injection: each class of fault that ended with a signal, a hang, a replaced device
/// node, a silently truncated recipe or a silent skip, run against the real executables. Every case must end in
/// exit 0 with correct output, or a non-zero exit with a message naming the file, field or flag — never a signal,
/// and never a hang (each run has a time limit, so a regression fails instead of stalling the suite).
final class FaultInjectionTests: XCTestCase {
    /// Runs `tool` with a time limit; a run that outlives it is killed and fails the test.
    func run(_ tool: String, _ arguments: [String], in directory: String? = nil, seconds: Double = 30,
             file: StaticString = #filePath, line: UInt = #line) throws -> Tool.Output {
        let process = try Tool.start(tool, arguments, in: directory)
        let deadline = Date().addingTimeInterval(seconds)
        while process.isRunning, Date() < deadline { usleep(20_000) }
        if process.isRunning {
            process.terminate()
            usleep(200_000)
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
            process.waitUntilExit()
            XCTFail("\(tool) \(arguments.joined(separator: " ")) did not end within \(seconds) s", file: file, line: line)
        }
        process.waitUntilExit()
        let out = Tool.output(of: process)
        XCTAssertEqual(process.terminationReason, .exit, "\(tool) \(arguments): ended by signal \(out.status)\n\(out.stderr)",
                       file: file, line: line)
        return out
    }

    /// Runs a system command (mknod, python3) to completion; its exit status.
    @discardableResult
    func system(_ arguments: [String]) throws -> Int32 {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        process.standardError = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        return process.terminationStatus
    }

    /// Asserts exit status 2 and a refusal naming `flag` as out of range (argument-parser's wording, our range).
    func assertOutOfRange(_ out: Tool.Output, _ flag: String, _ range: String? = nil, _ args: [String],
                          file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(out.status, 2, "\(args): \(out.stdout) \(out.stderr)", file: file, line: line)
        XCTAssertTrue(out.stderr.contains("for '\(flag) <") && out.stderr.contains("out of range"), "\(args): \(out.stderr)",
                      file: file, line: line)
        if let range { XCTAssertTrue(out.stderr.contains(range), "\(args): \(out.stderr)", file: file, line: line) }
    }

    // MARK: Thread counts

    /// `--threads 100000` made gpt-plan fork for minutes (until the process limit) and gpt-sample abort allocating
    /// 19.7 GB; every command now refuses a count over the stated bound, or under 1, before starting anything.
    func testEveryThreadsFlagIsBounded() throws {
        let maximum = max(256, 4 * ProcessInfo.processInfo.activeProcessorCount)
        let range = "must be between 1 and \(maximum)"
        let dir = try Fixtures.directory("threads")
        for (tool, args) in [("gpt-plan", ["--flops", "1e20", "--threads", "100000"]),
                             ("gpt-plan", ["--flops", "1e20", "--threads", "0"]),
                             ("gpt-sample", ["\(dir)/none.h5", "--threads", "100000"]),
                             ("gpt-sample", ["\(dir)/none.h5", "--threads", "-1"]),
                             ("gpt-train", ["\(dir)/none.toml", "--threads", "2000"]),
                             ("gpt-train", ["eval", "\(dir)/none.h5", "--threads", "100000"]),
                             ("gpt-train", ["sweep", "\(dir)/sweep", "--threads", "0"]),
                             ("gpt-train", ["ablate", "\(dir)/none.toml", "--out", "\(dir)/a", "--vary", "training.seed=1",
                                            "--threads", "\(maximum + 1)"]),
                             ("gpt-bench", ["ceiling", "--threads", "100000"]),
                             ("gpt-bench", ["train", "--threads", "100000"])] {
            assertOutOfRange(try run(tool, args, seconds: 20), "--threads", range, [tool] + args)
        }
    }

    // MARK: Numeric flags

    /// Negative numbers were "Missing value for '--temperature <temperature>'" (argument-parser took `-1` for an
    /// option), NaN and infinity were taken or refused inconsistently; each flag now states its range.
    func testNumericFlagsReportNegativeAndNonFiniteValuesAsOutOfRange() throws {
        let dir = try Fixtures.directory("numbers")
        let cases: [(String, [String], String)] = [
            ("gpt-sample", ["\(dir)/none.h5", "--temperature", "-1"], "--temperature"),
            ("gpt-sample", ["\(dir)/none.h5", "--temperature", "nan"], "--temperature"),
            ("gpt-sample", ["\(dir)/none.h5", "--temperature", "1e39"], "--temperature"),
            ("gpt-sample", ["\(dir)/none.h5", "--tokens", "-1"], "--tokens"),
            ("gpt-sample", ["\(dir)/none.h5", "--top-k", "-5"], "--top-k"),
            ("gpt-sample", ["\(dir)/none.h5", "--seed", "-1"], "--seed"),
            ("gpt-data", ["prepare", dir, "--tokenizer", "bpe", "-o", "\(dir)/p", "--vocab-size", "-1"], "--vocab-size"),
            ("gpt-data", ["prepare", dir, "--tokenizer", "char", "-o", "\(dir)/p", "--val-fraction", "-0.5"], "--val-fraction"),
            ("gpt-data", ["prepare", dir, "--tokenizer", "char", "-o", "\(dir)/p", "--val-fraction", "inf"], "--val-fraction"),
            ("gpt-plan", ["check", "\(dir)/none.toml", "--tolerance", "-1"], "--tolerance"),
            ("gpt-plan", ["check", "\(dir)/none.toml", "--tolerance", "nan"], "--tolerance"),
            ("gpt-plan", ["--flops", "inf"], "--flops"),
            ("gpt-plan", ["--flops", "1e400"], "--flops"),
            ("gpt-plan", ["--flops", "1e20", "--mfu", "nan"], "--mfu"),
            ("gpt-plan", ["--flops", "1e20", "--price-per-device-hour", "-2"], "--price-per-device-hour"),
            ("gpt-plan", ["sweep", "--flops", "1e12", "--sizes", "-1", "-o", "\(dir)/s"], "--sizes"),
            ("gpt-plan", ["sweep", "--flops", "1e12", "--span", "nan", "-o", "\(dir)/s"], "--span"),
            ("gpt-plan", ["fit", "\(dir)/s", "--samples", "-1"], "--samples"),
            ("gpt-train", ["\(dir)/none.toml", "--steps", "-1"], "--steps"),
            ("gpt-train", ["eval", "\(dir)/none.h5", "--windows", "-3"], "--windows"),
            ("gpt-bench", ["train", "--steps", "-1"], "--steps"),
            ("gpt-bench", ["train", "--warmup", "-1"], "--warmup"),
        ]
        for (tool, args, flag) in cases {
            assertOutOfRange(try run(tool, args, seconds: 20), flag, nil, [tool] + args)
        }
        // Not a number at all is its own message; a fraction where a count is wanted too.
        let word = try run("gpt-sample", ["\(dir)/none.h5", "--tokens", "many"])
        XCTAssertEqual(word.status, 2)
        XCTAssertTrue(word.stderr.contains("'--tokens <tokens>': not a number"), word.stderr)
        let fraction = try run("gpt-sample", ["\(dir)/none.h5", "--tokens", "2.5"])
        XCTAssertEqual(fraction.status, 2)
        XCTAssertTrue(fraction.stderr.contains("'--tokens <tokens>': not a whole number"), fraction.stderr)
    }

    // MARK: Outputs

    /// `-o` renamed its temporary file over whatever was there: a device node (run as root against /dev/full it
    /// replaces the device), a FIFO or a socket became a regular file. The Durable module's AtomicFile refuses,
    /// so every writer does; the node is left as it was. `-o x` (a one-character name) trapped in Foundation.
    func testOutputsNeverReplaceADeviceNodeFIFOSocketOrDirectory() throws {
        let dir = try Fixtures.directory("outputs")
        let device = "\(dir)/x"
        guard try system(["mknod", device, "c", "1", "7"]) == 0 else { throw XCTSkip("mknod needs root") }
        XCTAssertEqual(mkfifo("\(dir)/fifo.toml", 0o644), 0)
        XCTAssertEqual(try system(["python3", "-c", "import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])",
                                   "\(dir)/socket.toml"]), 0)
        try FileManager.default.createDirectory(atPath: "\(dir)/folder.toml", withIntermediateDirectories: true)
        func kind(_ path: String) -> mode_t {
            var info = stat()
            return lstat(path, &info) == 0 ? info.st_mode & S_IFMT : 0
        }
        let plan = ["--flops", "1e20", "--gpu", "a100-80gb"]
        for (path, type, words) in [(device, S_IFCHR, "it is a character device"), ("\(dir)/fifo.toml", S_IFIFO, "it is a FIFO"),
                                    ("\(dir)/socket.toml", S_IFSOCK, "it is a socket"),
                                    ("\(dir)/folder.toml", S_IFDIR, "it is a directory")] {
            let out = try run("gpt-plan", plan + ["-o", path])
            XCTAssertEqual(out.status, 2, "\(path): \(out.stderr)")
            XCTAssertTrue(out.stderr.contains("cannot write \(path): \(words)") && out.stderr.contains("Fix:"), out.stderr)
            XCTAssertEqual(kind(path), type, "\(path) was replaced")
        }
        // A relative one-character name in the current directory is written (Foundation trapped on it).
        let plain = try run("gpt-plan", plan + ["-o", "y"], in: dir)
        XCTAssertEqual(plain.status, 0, plain.stderr)
        XCTAssertEqual(kind("\(dir)/y"), S_IFREG)
        XCTAssertTrue(try String(contentsOfFile: "\(dir)/y", encoding: .utf8).contains("[training]"))
        // gpt-train plot writes through the same function.
        let runDirectory = "\(dir)/run"
        try FileManager.default.createDirectory(atPath: runDirectory, withIntermediateDirectories: true)
        try (1...5).map { "{\"step\": \($0), \"train_loss\": \(5.0 - Double($0) * 0.5), \"lr\": 0.001, \"grad_norm\": 1.0}\n" }
            .joined().write(toFile: "\(runDirectory)/metrics.jsonl", atomically: true, encoding: .utf8)
        XCTAssertEqual(try system(["mknod", "\(dir)/x.svg", "c", "1", "7"]), 0)
        let plot = try run("gpt-train", ["plot", runDirectory, "-o", "\(dir)/x.svg"])
        XCTAssertEqual(plot.status, 1, plot.stderr)
        XCTAssertTrue(plot.stderr.contains("cannot write \(dir)/x.svg: it is a character device"), plot.stderr)
        XCTAssertEqual(kind("\(dir)/x.svg"), S_IFCHR)
        // A temporary file that cannot be created names the reason and the fix.
        let proc = try run("gpt-plan", plan + ["-o", "/proc/recipe.toml"])
        XCTAssertEqual(proc.status, 2, proc.stderr)
        XCTAssertTrue(proc.stderr.contains("cannot create the temporary file /proc/.recipe.toml.tmp-"), proc.stderr)
        XCTAssertTrue(proc.stderr.contains("No such file or directory. Fix:"), proc.stderr)
    }

    // MARK: Recipe bytes

    /// toml++ reads a C string: a NUL byte ended the recipe there, so `gpt-plan check` said ok and gpt-train trained
    /// what it never read (`steps = -5` after the NUL), or a key after a mid-file NUL was "missing".
    func testANulByteInARecipeIsRefusedWithItsPosition() throws {
        let dir = try Fixtures.directory("nul")
        let recipe = try Fixtures.recipe(in: dir)
        let text = try Data(contentsOf: URL(fileURLWithPath: recipe))
        let lines = text.split(separator: 0x0A, omittingEmptySubsequences: false).count
        var appended = text
        appended.append(contentsOf: Array("\0[training]\nsteps = -5\n".utf8))
        try appended.write(to: URL(fileURLWithPath: "\(dir)/appended.toml"))
        let check = try run("gpt-plan", ["check", "\(dir)/appended.toml"])
        XCTAssertEqual(check.status, 1, check.stdout)
        XCTAssertTrue(check.stdout.contains("\(dir)/appended.toml:\(lines):1: error: holds a NUL byte (0x00)"), check.stdout)
        XCTAssertTrue(check.stdout.contains("Fix: remove the NUL bytes"), check.stdout)
        let train = try run("gpt-train", ["\(dir)/appended.toml", "--out", "\(dir)/run", "--no-mfu"])
        XCTAssertEqual(train.status, 1, train.stderr)
        XCTAssertTrue(train.stderr.contains("holds a NUL byte"), train.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(dir)/run/metrics.jsonl"), "nothing trained")

        // Mid-file, inside [logging]: the NUL is named, not a "missing" key after it.
        let original = String(decoding: text, as: UTF8.self)
        let middle = original.replacingOccurrences(of: "[logging]\n", with: "[logging]\n\0")
        XCTAssertNotEqual(middle, original)
        try middle.write(toFile: "\(dir)/middle.toml", atomically: true, encoding: .utf8)
        let mid = try run("gpt-plan", ["check", "\(dir)/middle.toml"])
        XCTAssertEqual(mid.status, 1)
        XCTAssertTrue(mid.stdout.contains("holds a NUL byte"), mid.stdout)
        XCTAssertFalse(mid.stdout.contains("missing"), mid.stdout)
    }

    /// A recipe that says `schema_version = 1` but uses keys version 2 introduced is read with a warning naming them.
    func testSchemaVersion1WithVersion2KeysWarns() throws {
        let dir = try Fixtures.directory("schema1")
        let recipe = try Fixtures.recipe(in: dir)
        let text = try String(contentsOfFile: recipe, encoding: .utf8)
        XCTAssertTrue(text.contains("schema_version = 2\n"))
        try text.replacingOccurrences(of: "schema_version = 2\n", with: "schema_version = 1\n")
            .write(toFile: "\(dir)/v1.toml", atomically: true, encoding: .utf8)
        let out = try run("gpt-plan", ["check", "\(dir)/v1.toml"])
        XCTAssertEqual(out.status, 0, out.stdout)
        XCTAssertTrue(out.stdout.contains("warning: schema_version: is 1, but the recipe uses what schema version 2 introduced: "
                                          + "training.dropout"), out.stdout)
        XCTAssertTrue(out.stdout.contains("Fix: set schema_version = 2"), out.stdout)
    }

    // MARK: Huge values

    /// `--device-memory 1e30 -o` trapped converting to Int (SIGILL), and other plans were printed but refused only
    /// with -o; now each ends with exit 2 naming the flag, with or without -o.
    func testHugeAndAbsurdPlanValuesAreRefusedWithOrWithoutOutput() throws {
        let dir = try Fixtures.directory("huge")
        let cases: [([String], String)] = [
            (["--flops", "1e20", "--device-memory", "1e30"], "'--device-memory <device-memory>': out of range"),
            (["--flops", "1e20", "--device-memory", "1e300", "--json"], "'--device-memory <device-memory>': out of range"),
            (["--flops", "1e20", "--inference-tokens", "1e40"], "the plan's training tokens D come to"),
            (["--flops", "1e20", "--gpu", "a100-80gb", "--lr", "1e10"], "'--lr <lr>': out of range: must be in (0, 1]"),
            (["--flops", "1e20", "--gpu", "a100-80gb", "--device-flops", "1e40"], "'--device-flops <device-flops>': out of range"),
            (["--flops", "1e20", "--gpu", "a100-80gb", "--mfu", "1e-300"], "'--mfu <mfu>': out of range: must be between 0.001 and 1"),
            (["--flops", "1e20", "--gpu", "a100-80gb", "--lr-rule", "reference", "--reference-batch", "1e300", "--reference-lr", "1"],
             "the learning-rate rule gives 1.02e-147"),
            (["--flops", "1e20", "--gpu", "a100-80gb", "--pipeline-parallel", "100000"],
             "'--pipeline-parallel <pipeline-parallel>': out of range: must be between 1 and 1024"),
            (["--flops", "1e26", "--gpu", "h100-sxm-80gb", "--devices", "auto", "--batch", "1e12"],
             "the plan's batch sequences come to 1.34e+08, more than a recipe holds (1.68e+07); give a smaller --batch"),
            (["--flops", "1e20", "--gpu", "a100-80gb", "--price-per-device-hour", "1e308"],
             "'--price-per-device-hour <price-per-device-hour>': out of range: must be between 0 and 1000000"),
            (["sweep", "--flops", "1e12,,1e13", "-o", "\(dir)/sweep"], "item 2 of 3 is empty"),
        ]
        for (args, words) in cases {
            for output in [[], ["-o", "\(dir)/r.toml"]] where args.first != "sweep" || output.isEmpty {
                let out = try run("gpt-plan", args + output)
                XCTAssertEqual(out.status, 2, "\(args + output): \(out.stdout) \(out.stderr)")
                XCTAssertTrue(out.stderr.contains(words), "\(args + output): \(out.stderr)")
                XCTAssertFalse(FileManager.default.fileExists(atPath: "\(dir)/r.toml"), "\(args): wrote a recipe")
            }
        }
    }

    // MARK: Data inputs

    /// `gpt-data prepare` blocked forever on a FIFO or a link to /dev/zero in its folder, dropped files it could not
    /// name or read without a word, and read a file given twice twice.
    func testPrepareOpensOnlyRegularFilesAndNamesWhatItSkips() throws {
        let dir = try Fixtures.directory("inputs")
        let text = Fixtures.text(bytes: 4000)
        func folder(_ name: String) throws -> String {
            let path = "\(dir)/\(name)"
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
            try text.write(toFile: "\(path)/a.txt", atomically: true, encoding: .utf8)
            return path
        }
        try text.write(toFile: "\(dir)/twice-source.txt", atomically: true, encoding: .utf8)
        let fifo = try folder("fifo")
        XCTAssertEqual(mkfifo("\(fifo)/pipe.txt", 0o644), 0)
        let zero = try folder("zero")
        try FileManager.default.createSymbolicLink(atPath: "\(zero)/zero.txt", withDestinationPath: "/dev/zero")
        let dangling = try folder("dangling")
        try FileManager.default.createSymbolicLink(atPath: "\(dangling)/gone.txt", withDestinationPath: "\(dir)/nowhere.txt")
        let latin = try folder("latin")
        let badName = Array("\(latin)/caf".utf8) + [0xE9] + Array(".txt".utf8)
        var cName = badName.map { CChar(bitPattern: $0) } + [0]
        let created = open(&cName, O_WRONLY | O_CREAT, 0o644)
        XCTAssertGreaterThanOrEqual(created, 0)
        close(created)
        for (input, words) in [(fifo, "\(fifo)/pipe.txt: is a FIFO (named pipe), not a text file"),
                               (zero, "\(zero)/zero.txt: is a character device, not a text file"),
                               (dangling, "\(dangling)/gone.txt: a symbolic link to \(dir)/nowhere.txt, which does not exist"),
                               (latin, "\(latin)/caf\\xe9.txt: its name is not UTF-8")] {
            let out = try run("gpt-data", ["prepare", input, "--tokenizer", "char", "-o", "\(input)-prepared"], seconds: 20)
            XCTAssertEqual(out.status, 1, "\(input): \(out.stderr)")
            XCTAssertTrue(out.stderr.contains(words) && out.stderr.contains("Fix:"), out.stderr)
            XCTAssertFalse(FileManager.default.fileExists(atPath: "\(input)-prepared"), "nothing written")
        }
        // A FIFO given by name is refused too, without waiting for a writer.
        let named = try run("gpt-data", ["prepare", "\(fifo)/pipe.txt", "--tokenizer", "char", "-o", "\(dir)/p"], seconds: 20)
        XCTAssertEqual(named.status, 1, named.stderr)
        XCTAssertTrue(named.stderr.contains("is a FIFO"), named.stderr)
        // An -o that is not a folder is refused before any work (it was a Foundation error after the tokenizer).
        for target in ["\(fifo)/pipe.txt", "\(fifo)/a.txt", "/dev/null"] {
            let out = try run("gpt-data", ["prepare", "\(dir)/twice-source.txt", "--tokenizer", "char", "-o", target], seconds: 20)
            XCTAssertEqual(out.status, 1, out.stderr)
            XCTAssertTrue(out.stderr.contains("gpt-data: \(target): is a"), out.stderr)
            XCTAssertTrue(out.stderr.contains("not a folder") && out.stderr.contains("Fix: give a new or existing folder"), out.stderr)
            XCTAssertFalse(out.stderr.contains("NSCocoaErrorDomain"), out.stderr)
        }
        // So are the other files the commands read whole: a tokenizer, a text to encode, a fit.
        for (tool, args) in [("gpt-data", ["encode", "--tokenizer", "\(fifo)/pipe.txt", "hello"]),
                             ("gpt-plan", ["--flops", "1e20", "--gpu", "a100-80gb", "--fit", "\(fifo)/pipe.txt"])] {
            let out = try run(tool, args, seconds: 20)
            XCTAssertEqual(out.status, 2, "\(args): \(out.stderr)")
            XCTAssertTrue(out.stderr.contains("\(fifo)/pipe.txt: is a FIFO (named pipe), not a file. Fix:"), out.stderr)
        }

        // Given twice (and once more through its folder, and through a hard link): read once, the others named.
        let twice = try folder("twice")
        XCTAssertEqual(link("\(twice)/a.txt", "\(twice)/hard.txt"), 0)
        try "hidden".write(toFile: "\(twice)/.hidden", atomically: true, encoding: .utf8)
        let out = try run("gpt-data", ["prepare", "\(twice)/a.txt", "\(twice)/a.txt", twice, "--tokenizer", "char",
                                       "-o", "\(dir)/twice-prepared"])
        XCTAssertEqual(out.status, 0, out.stderr)
        XCTAssertTrue(out.stderr.contains("note: skipped \(twice)/a.txt: the same file as \(twice)/a.txt (read once)"), out.stderr)
        XCTAssertTrue(out.stderr.contains("note: skipped \(twice)/hard.txt: the same file as \(twice)/a.txt"), out.stderr)
        XCTAssertTrue(out.stderr.contains("note: skipped \(twice)/.hidden: hidden"), out.stderr)
        XCTAssertTrue(out.stderr.contains("gpt-data: 1 file, "), out.stderr)
        let meta = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(dir)/twice-prepared/meta.json")))
            as! [String: Any]
        XCTAssertEqual((meta["sources"] as! [Any]).count, 1)
        XCTAssertEqual((meta["train_tokens"] as! Int) + (meta["val_tokens"] as! Int), text.utf8.count, "the text once")
        // The prepared directory's own files are opened the same way (gpt-data info, and gpt-train through a recipe).
        for name in ["meta.json", "val.bin"] {
            let copy = "\(dir)/fifo-\(name)-prepared"
            try FileManager.default.copyItem(atPath: "\(dir)/twice-prepared", toPath: copy)
            try FileManager.default.removeItem(atPath: "\(copy)/\(name)")
            XCTAssertEqual(mkfifo("\(copy)/\(name)", 0o644), 0)
            let info = try run("gpt-data", ["info", copy], seconds: 20)
            XCTAssertEqual(info.status, 1, info.stderr)
            XCTAssertTrue(info.stderr.contains("\(copy)/\(name): is a FIFO (named pipe), not a regular file"), info.stderr)
        }
        let encode = try run("gpt-data", ["encode", "--tokenizer", "\(dir)/twice-prepared", "--file", "\(fifo)/pipe.txt"],
                             seconds: 20)
        XCTAssertEqual(encode.status, 2, encode.stderr)
        XCTAssertTrue(encode.stderr.contains("\(fifo)/pipe.txt: is a FIFO (named pipe), not a file. Fix:"), encode.stderr)
    }

    /// A sub-folder that cannot be listed was dropped in silence. Root lists any folder, so as root the command
    /// runs as `nobody` (setpriv, util-linux).
    func testAnUnreadableSubfolderIsNamed() throws {
        let dir = try Fixtures.directory("unreadable")
        try FileManager.default.createDirectory(atPath: "\(dir)/data/locked", withIntermediateDirectories: true)
        try Fixtures.text(bytes: 4000).write(toFile: "\(dir)/data/a.txt", atomically: true, encoding: .utf8)
        chmod(dir, 0o777)
        chmod("\(dir)/data/locked", 0)
        defer { chmod("\(dir)/data/locked", 0o755) }
        var arguments = [Tool.path("gpt-data"), "prepare", "\(dir)/data", "--tokenizer", "char", "-o", "\(dir)/p"]
        if getuid() == 0 {
            guard FileManager.default.isExecutableFile(atPath: "/usr/bin/setpriv") else {
                throw XCTSkip("root lists any folder, and setpriv (util-linux) is missing to run as nobody")
            }
            arguments = ["/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] + arguments
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: arguments[0])
        process.arguments = Array(arguments.dropFirst())
        let errors = Pipe()
        process.standardError = errors
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        let stderr = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 1, stderr)
        XCTAssertTrue(stderr.contains("\(dir)/data/locked: this folder cannot be listed: Permission denied. Fix:"), stderr)
    }

    // MARK: Fits and metrics

    /// A fake finished sweep: runs at three budgets with the given tokens and losses.
    func sweep(in dir: String, _ name: String, tokens: (Int) -> Double = { 1e6 * Double($0 + 1) },
               loss: (Int) -> Double = { 3 + 0.1 * Double(($0 % 3) - 1) * Double(($0 % 3) - 1) + 0.05 * Double($0 / 3) },
               params: (Int) -> Double = { 1e5 * Double($0 % 3 + 1) }) throws -> String {
        let root = "\(dir)/\(name)"
        var runs: [[String: Any]] = []
        for i in 0..<9 {
            let run = "runs/r\(i)"
            try FileManager.default.createDirectory(atPath: "\(root)/\(run)", withIntermediateDirectories: true)
            try "{\"step\": 10, \"val_loss\": \(loss(i))}\n".write(toFile: "\(root)/\(run)/metrics.jsonl", atomically: true, encoding: .utf8)
            let flops = [1e12, 3e12, 1e13][i / 3]
            runs.append(["name": "r\(i)", "flops": flops, "target_params": params(i), "params": params(i),
                         "tokens": tokens(i), "steps": 10, "recipe": "recipes/r\(i).toml", "run": run])
        }
        let manifest: [String: Any] = ["format_version": 1, "fit": "epoch", "budgets": [1e12, 3e12, 1e13],
                                       "sizes_per_budget": 3, "span": 4, "runs": runs, "notes": [String]()]
        try JSONSerialization.data(withJSONObject: manifest).write(to: URL(fileURLWithPath: "\(root)/manifest.json"))
        return root
    }

    /// `gpt-plan fit` wrote a fit from runs with 1e300 tokens, duplicated runs, or losses all equal, with no note;
    /// and a metrics.jsonl that is a directory or a FIFO was "not finished" (or hung).
    func testFitRefusesRunsItCannotFit() throws {
        let dir = try Fixtures.directory("fit")
        let huge = try sweep(in: dir, "huge", tokens: { $0 == 4 ? 1e300 : 1e6 * Double($0 + 1) })
        let equal = try sweep(in: dir, "equal", loss: { _ in 3.25 })
        let copies = try sweep(in: dir, "copies", tokens: { $0 == 5 ? 1e6 * 5 : 1e6 * Double($0 + 1) },
                               params: { $0 == 5 ? 2e5 : 1e5 * Double($0 % 3 + 1) })
        for (sweep, words) in [(huge, "run r4 in \(huge)/manifest.json: its tokens 1e+300 is out of range"),
                               (equal, "every run of \(equal) ends at the same validation loss, 3.25"),
                               (copies, "runs r4 and r5 in \(copies)/manifest.json have the same size and token count")] {
            let out = try run("gpt-plan", ["fit", sweep, "--samples", "5"])
            XCTAssertEqual(out.status, 1, "\(sweep): \(out.stdout) \(out.stderr)")
            XCTAssertTrue(out.stderr.contains(words) && out.stderr.contains("Fix:"), out.stderr)
            XCTAssertFalse(FileManager.default.fileExists(atPath: "\(sweep)/fit.json"), "\(sweep): a fit was written")
        }
        // The same sweep with sound numbers fits (so the refusals above are the data's).
        let sound = try sweep(in: dir, "sound")
        XCTAssertEqual(try run("gpt-plan", ["fit", sound, "--samples", "5"]).status, 0)

        for (name, make) in [("directory", { (path: String) in try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: false) }),
                             ("fifo", { (path: String) in XCTAssertEqual(mkfifo(path, 0o644), 0) })] as [(String, (String) throws -> Void)] {
            let broken = try sweep(in: dir, name)
            try FileManager.default.removeItem(atPath: "\(broken)/runs/r0/metrics.jsonl")
            try make("\(broken)/runs/r0/metrics.jsonl")
            let kind = name == "fifo" ? "a FIFO (named pipe)" : "a directory"
            for (tool, args) in [("gpt-plan", ["fit", broken, "--samples", "5"]),
                                 ("gpt-train", ["sweep", broken, "--no-mfu", "--threads", "1"])] {
                let out = try run(tool, args, seconds: 20)
                XCTAssertEqual(out.status, 1, "\(tool) \(name): \(out.stderr)")
                XCTAssertTrue(out.stderr.contains("\(broken)/runs/r0/metrics.jsonl: is \(kind)"), out.stderr)
                XCTAssertFalse(out.stderr.contains("no such file"), out.stderr)
            }
        }
    }

    // MARK: Tokenizers

    /// A checkpoint whose /tokenizer lost one code point (a consistent char tokenizer, one token short) passed
    /// inspect and gpt-sample, which decoded every token after the missing one as the wrong character. Both compare
    /// the tokenizer with the one the checkpoint's data gives, as eval does.
    func testACheckpointTokenizerThatIsNotItsDatasIsRefused() throws {
        let dir = try Fixtures.directory("tokenizer")
        let recipe = try Fixtures.recipe(in: dir, .checkpointed(steps: 2, every: 2))
        XCTAssertEqual(try run("gpt-train", [recipe, "--out", "\(dir)/run", "--no-mfu", "--threads", "1"]).status, 0)
        let path = "\(dir)/run/checkpoints/ckpt-00000002.h5"
        let sound = try run("gpt-sample", [path, "--tokens", "3", "--threads", "1"])
        XCTAssertEqual(sound.status, 0, sound.stderr)
        let inspected = try run("gpt-train", ["inspect", path])
        XCTAssertEqual(inspected.status, 0, inspected.stderr)
        XCTAssertTrue(inspected.stdout.contains("and the tokenizer the same as its data's"), inspected.stdout)

        var json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(TokenizerTestFile.read(path).utf8)) as? [String: Any])
        var points = try XCTUnwrap(json["code_points"] as? [Int])
        XCTAssertGreaterThan(points.count, 2)
        points.remove(at: points.count / 2)
        json["code_points"] = points
        json["vocab_size"] = points.count
        try TokenizerTestFile.write(String(decoding: try JSONSerialization.data(withJSONObject: json), as: UTF8.self), to: path)
        for (tool, args) in [("gpt-sample", [path, "--tokens", "3", "--threads", "1"]), ("gpt-train", ["inspect", path])] {
            let out = try run(tool, args)
            XCTAssertEqual(out.status, 1, "\(tool): \(out.stdout) \(out.stderr)")
            XCTAssertTrue(out.stderr.contains("\(path): /tokenizer (char, \(points.count) tokens) is not the tokenizer its data"),
                          out.stderr)
            XCTAssertTrue(out.stderr.contains("(char, \(points.count + 1) tokens)") && out.stderr.contains("Fix:"), out.stderr)
        }
        // Data that has moved cannot be compared: sampling goes on, with a note.
        try FileManager.default.moveItem(atPath: "\(dir)/data.txt", toPath: "\(dir)/moved.txt")
        let moved = try run("gpt-sample", [path, "--tokens", "3", "--threads", "1"])
        XCTAssertEqual(moved.status, 0, moved.stderr)
        XCTAssertTrue(moved.stderr.contains("is gone, so its tokenizer was not compared with the data's"), moved.stderr)
    }

    /// A manifest.json or a checkpoint that is a FIFO blocked `gpt-plan fit`, `gpt-train sweep` or the checkpoint readers forever.
    func testASweepManifestOrCheckpointThatIsAFIFOIsNamed() throws {
        let dir = try Fixtures.directory("manifest")
        try FileManager.default.createDirectory(atPath: "\(dir)/sweep", withIntermediateDirectories: true)
        XCTAssertEqual(mkfifo("\(dir)/sweep/manifest.json", 0o644), 0)
        for (tool, args) in [("gpt-plan", ["fit", "\(dir)/sweep"]), ("gpt-train", ["sweep", "\(dir)/sweep", "--no-mfu"])] {
            let out = try run(tool, args, seconds: 20)
            XCTAssertEqual(out.status, 2, "\(tool): \(out.stderr)")
            XCTAssertTrue(out.stderr.contains("\(dir)/sweep/manifest.json: is a FIFO (named pipe), not a file. Fix:"), out.stderr)
        }
        // A checkpoint that is a FIFO blocked HDF5's open in every reader.
        XCTAssertEqual(mkfifo("\(dir)/ckpt.h5", 0o644), 0)
        for (tool, args) in [("gpt-sample", ["\(dir)/ckpt.h5"]), ("gpt-train", ["eval", "\(dir)/ckpt.h5"]),
                             ("gpt-train", ["inspect", "\(dir)/ckpt.h5"])] {
            let out = try run(tool, args, seconds: 20)
            XCTAssertEqual(out.status, 1, "\(tool): \(out.stderr)")
            XCTAssertTrue(out.stderr.contains("\(dir)/ckpt.h5: is a FIFO (named pipe), not a checkpoint file. Fix:"), out.stderr)
        }
    }

    /// The rank-count mismatch suggested `--devices-from-mpi`, which no command has.
    func testTheRankMismatchSuggestsOnlyFixesThatExist() {
        let text = DataParallelError.rankCountMismatch(ranks: 2, devices: 4).description
        XCTAssertFalse(text.contains("--devices-from-mpi"), text)
        XCTAssertTrue(text.contains("Fix: run `mpirun -np 4 …`, or set training.devices = 2"), text)
    }
}

/// The /tokenizer string of a checkpoint, read and replaced through the HDF5 C API (as an altered file would be).
enum TokenizerTestFile {
    static func read(_ path: String) throws -> String {
        try CheckpointReader(path: path).tokenizer
    }

    static func write(_ text: String, to path: String) throws {
        try HDF5Surgery.edit(path) { file in
            let bytes = Array(text.utf8)
            let type = H5Tcopy(gpt_H5T_C_S1())
            defer { H5Tclose(type) }
            H5Tset_size(type, bytes.count)
            H5Tset_cset(type, H5T_CSET_UTF8)
            H5Tset_strpad(type, H5T_STR_NULLPAD)
            try bytes.withUnsafeBytes { raw in
                try HDF5Surgery.replace(file, "/tokenizer", fileType: type, memoryType: type, shape: [1], data: raw.baseAddress!)
            }
        }
    }
}
