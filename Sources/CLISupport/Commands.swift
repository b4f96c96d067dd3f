import ArgumentParser
import Compute
import Foundation
/// The commands format numbers with Formatting's helpers; importing CLISupport brings them.
@_exported import Formatting

/// An error that ends a command with a message and a specific exit status.
public struct CommandFailure: Error, CustomStringConvertible {
    public var exitCode: Int32
    public var message: String

    public init(_ message: String, exitCode: Int32 = 1) {
        self.message = message
        self.exitCode = exitCode
    }

    /// Bad input on the command line: exit status 2.
    public static func usage(_ message: String) -> CommandFailure { CommandFailure(message, exitCode: 2) }

    public var description: String { message }
}

public enum Main {
    /// What ends the process after a command failed and its message is known; nil prints the message and exits.
    /// A data-parallel run sets it so that one failing rank ends every rank of the job (`MPI_Abort`).
    nonisolated(unsafe) public static var failureHandler: ((_ message: String, _ status: Int32) -> Never)?

    /// Parses the arguments and runs the command. Exit status: 0 on success (and for --help), the status a
    /// `CommandFailure` carries, 2 for arguments that do not parse or validate, 1 for anything else.
    public static func run(_ command: any ParsableCommand.Type) -> Never {
        do {
            var parsed = try command.parseAsRoot()
            try parsed.run()
            exit(0)
        } catch let failure as CommandFailure {
            if let handler = failureHandler { handler(failure.message, failure.exitCode) }
            Terminal.error(failure.message)
            exit(failure.exitCode)
        } catch let code as ExitCode {
            exit(code.rawValue)
        } catch {
            let status = command.exitCode(for: error)
            let message = command.fullMessage(for: error)
            if status == .success {
                print(message)
                exit(0)
            }
            Terminal.error(message)
            // Argument-parser reports usage and validation errors as 64 (EX_USAGE); the toolkit's convention is 2.
            exit(status == .validationFailure ? 2 : status.rawValue)
        }
    }

    /// Restarts this executable with `OPENBLAS_CORETYPE` set when OpenBLAS runs slower kernels than the CPU
    /// supports (see `BLAS.preferredCoreType`). Call first thing in `main`; returns when no restart is needed,
    /// after one restart already happened, or when the restart failed (the run then continues on the kernels
    /// OpenBLAS chose).
    public static func relaunchWithFastestBLASCore() {
        let environment = ProcessInfo.processInfo.environment
        guard environment["GPT_BLAS_RELAUNCHED"] == nil, let core = BLAS.preferredCoreType() else { return }
        setenv("GPT_BLAS_RELAUNCHED", "1", 1)
        if let previous = environment["OPENBLAS_CORETYPE"] { setenv("GPT_BLAS_ORIGINAL_CORETYPE", previous, 1) }
        setenv("OPENBLAS_CORETYPE", core, 1)
        execv("/proc/self/exe", CommandLine.unsafeArgv)
    }

    /// One line on the matrix kernels in use, for run headers.
    public static var blasDescription: String {
        var text = "OpenBLAS \(BLAS.coreName) kernels"
        if let previous = BLAS.overriddenCoreType, previous.lowercased() != BLAS.coreName.lowercased() {
            text += " (instead of OPENBLAS_CORETYPE=\(previous) from the environment; GPT_BLAS_CORE=keep keeps it)"
        }
        return text
    }
}

/// How executables talk to the person at the terminal.
public enum Terminal {
    public static let isInteractive = isatty(STDERR_FILENO) == 1

    public static func error(_ message: String) {
        FileHandle.standardError.write(Data((message.hasSuffix("\n") ? message : message + "\n").utf8))
    }

    public static func note(_ message: String) { error(message) }

    /// Rewrites the current terminal line (progress); a no-op when stderr is not a terminal.
    public static func progress(_ line: String) {
        guard isInteractive else { return }
        FileHandle.standardError.write(Data("\r\u{1B}[K\(line)".utf8))
    }

    public static func endProgress() {
        guard isInteractive else { return }
        FileHandle.standardError.write(Data("\r\u{1B}[K".utf8))
    }
}
