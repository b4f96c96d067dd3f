#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// Files written so that a crash at any moment leaves either the old file or the complete new one: the bytes go
/// to a temporary file in the same directory, are flushed and fsynced, and the temporary file is renamed over the
/// target (atomic on POSIX file systems); then the directory is fsynced so the rename itself survives a crash.
public enum AtomicFile {
    public struct WriteError: Error, CustomStringConvertible {
        public var path: String
        public var reason: String
        public init(path: String, reason: String) {
            self.path = path
            self.reason = reason
        }
        public var description: String { "cannot write \(path): \(reason)" }
    }

    public static func write(_ data: Data, to path: String) throws {
        let temporary = temporaryPath(for: path)
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw WriteError(path: path, reason: errnoText()) }
        var failure: String?
        data.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let n = Glibc.write(fd, raw.baseAddress! + offset, raw.count - offset)
                if n < 0 {
                    if errno == EINTR { continue }
                    failure = errnoText()
                    return
                }
                offset += n
            }
        }
        if failure == nil, fsync(fd) != 0 { failure = errnoText() }
        if close(fd) != 0, failure == nil { failure = errnoText() }
        if let failure {
            unlink(temporary)
            throw WriteError(path: path, reason: failure)
        }
        try commit(temporary: temporary, to: path)
    }

    public static func write(_ text: String, to path: String) throws {
        try write(Data(text.utf8), to: path)
    }

    /// A sibling path for the temporary file: same directory (so rename is atomic), hidden, unique per process.
    public static func temporaryPath(for path: String) -> String {
        let url = URL(fileURLWithPath: path)
        let name = ".\(url.lastPathComponent).tmp-\(getpid())"
        return url.deletingLastPathComponent().appendingPathComponent(name).path
    }

    /// Renames a complete, fsynced temporary file over `path` and fsyncs the directory.
    public static func commit(temporary: String, to path: String) throws {
        guard rename(temporary, path) == 0 else {
            let reason = errnoText()
            unlink(temporary)
            throw WriteError(path: path, reason: reason)
        }
        syncDirectory(containing: path)
    }

    /// fsyncs a file that was written by other means (the HDF5 library, for instance).
    public static func sync(path: String) throws {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw WriteError(path: path, reason: errnoText()) }
        defer { close(fd) }
        guard fsync(fd) == 0 else { throw WriteError(path: path, reason: errnoText()) }
    }

    public static func syncDirectory(containing path: String) {
        let directory = URL(fileURLWithPath: path).deletingLastPathComponent().path
        let fd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd >= 0 {
            fsync(fd)
            close(fd)
        }
    }

    static func errnoText() -> String { String(cString: strerror(errno)) }
}
