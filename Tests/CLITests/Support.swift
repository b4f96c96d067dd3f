import Foundation
import XCTest

/// Runs the package's executables, which `swift build --build-tests` puts next to the test bundle.
enum Tool {
    static let directory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()

    struct Output {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    static func path(_ name: String) -> String { directory.appendingPathComponent(name).path }

    /// Runs `name` with `arguments` to completion; its output goes through temporary files.
    @discardableResult
    static func run(_ name: String, _ arguments: [String], in directory: String? = nil,
                    environment: [String: String] = [:]) throws -> Output {
        let process = try start(name, arguments, in: directory, environment: environment)
        process.waitUntilExit()
        return output(of: process)
    }

    /// Starts `name` with stdout and stderr going to temporary files (read them with `output(of:)`).
    static func start(_ name: String, _ arguments: [String], in directory: String? = nil,
                      environment: [String: String] = [:]) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path(name))
        process.arguments = arguments
        if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
        var env = ProcessInfo.processInfo.environment
        for (k, v) in environment { env[k] = v }
        process.environment = env
        let base = (NSTemporaryDirectory() as NSString).appendingPathComponent("cli-\(UUID().uuidString)")
        for suffix in [".out", ".err"] { FileManager.default.createFile(atPath: base + suffix, contents: nil) }
        process.standardOutput = FileHandle(forWritingAtPath: base + ".out")
        process.standardError = FileHandle(forWritingAtPath: base + ".err")
        outputFiles[ObjectIdentifier(process)] = base
        try process.run()
        return process
    }

    nonisolated(unsafe) static var outputFiles: [ObjectIdentifier: String] = [:]

    static func output(of process: Process) -> Output {
        let base = outputFiles[ObjectIdentifier(process)]!
        let read = { (suffix: String) in (try? String(contentsOfFile: base + suffix, encoding: .utf8)) ?? "" }
        defer { for suffix in [".out", ".err"] { try? FileManager.default.removeItem(atPath: base + suffix) } }
        return Output(status: process.terminationStatus, stdout: read(".out"), stderr: read(".err"))
    }

    /// The repository's root (for the shipped recipes).
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path
}
