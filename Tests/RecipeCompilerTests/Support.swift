import Corpus
import RecipeCompiler
import Foundation
import Recipe
import XCTest

enum Support {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path
    static let pythonDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Python").path

    static func recipe(_ name: String) throws -> Recipe {
        try RecipeLoader.loadValid(path: "\(repository)/recipes/\(name)").0
    }

    static func settings(_ directory: String = "/exports/run", includeData: Bool = false) -> ExportSettings {
        ExportSettings(directory: directory, recipePath: "recipe.toml", gpusPerNode: 8, includeData: includeData)
    }

    /// The text of the configuration file `name` of an engine configuration.
    static func file(_ configuration: EngineConfiguration, _ name: String) -> String {
        configuration.files.first { $0.name == name }!.text
    }

    /// The `ARGS=( ... )` of a train.sh: flag → value ("" for a flag without one), in order.
    static func arguments(_ script: String) -> [(flag: String, value: String)] {
        let lines = script.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        guard let start = lines.firstIndex(of: "ARGS=("), let end = lines[start...].firstIndex(of: ")") else { return [] }
        return lines[(start + 1)..<end].map { line in
            let parts = line.trimmingCharacters(in: .whitespaces).split(separator: " ", maxSplits: 1).map(String.init)
            var value = parts.count > 1 ? parts[1] : ""
            if value.hasPrefix("'"), value.hasSuffix("'") { value = String(value.dropFirst().dropLast()) }
            return (parts[0], value)
        }
    }

    static func argumentDictionary(_ script: String) -> [String: String] {
        var out: [String: String] = [:]
        for (flag, value) in arguments(script) {
            XCTAssertNil(out[flag], "\(flag) given twice")
            out[flag] = value
        }
        return out
    }

    /// `name = value` lines of a nanoGPT config.py (comments stripped).
    static func pythonAssignments(_ text: String) -> [String: String] {
        var out: [String: String] = [:]
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            let parts = line.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard parts.count == 2 else { continue }
            var value = parts[1]
            if let hash = value.range(of: "  #") { value = String(value[..<hash.lowerBound]) }
            out[parts[0]] = value
        }
        return out
    }

    /// Runs python3 with `arguments`; nil (and the reason) when python3 or a needed package is missing (exit 3).
    static func python(_ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3"] + arguments
        let base = (NSTemporaryDirectory() as NSString).appendingPathComponent("py-\(UUID().uuidString)")
        _ = FileManager.default.createFile(atPath: base + ".out", contents: nil)
        _ = FileManager.default.createFile(atPath: base + ".err", contents: nil)
        process.standardOutput = FileHandle(forWritingAtPath: base + ".out")
        process.standardError = FileHandle(forWritingAtPath: base + ".err")
        var environment = ProcessInfo.processInfo.environment
        environment["PYTHONWARNINGS"] = "ignore"
        process.environment = environment
        try process.run()
        process.waitUntilExit()
        defer { for s in [".out", ".err"] { try? FileManager.default.removeItem(atPath: base + s) } }
        let read = { (s: String) in (try? String(contentsOfFile: base + s, encoding: .utf8)) ?? "" }
        return (process.terminationStatus, read(".out"), read(".err"))
    }

    static func requirePython(_ module: String) throws {
        let result = try python(["-c", "import \(module)"])
        if result.status != 0 { throw XCTSkip("python3 with \(module) is not available (scripts/setup.sh installs it): \(result.stderr.suffix(200))") }
    }

    static func bytes(_ path: String) throws -> [UInt8] {
        Array(try Data(contentsOf: URL(fileURLWithPath: path)))
    }

    static func int32(_ b: [UInt8], _ at: Int) -> Int32 {
        Int32(bitPattern: UInt32(b[at]) | UInt32(b[at + 1]) << 8 | UInt32(b[at + 2]) << 16 | UInt32(b[at + 3]) << 24)
    }

    static func int64(_ b: [UInt8], _ at: Int) -> Int64 {
        var v: UInt64 = 0
        for i in 0..<8 { v |= UInt64(b[at + i]) << UInt64(8 * i) }
        return Int64(bitPattern: v)
    }

    static func uint16s(_ b: [UInt8], from: Int) -> [Int32] {
        stride(from: from, to: b.count, by: 2).map { Int32(UInt16(b[$0]) | UInt16(b[$0 + 1]) << 8) }
    }
}
