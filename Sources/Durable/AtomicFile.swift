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

    /// Writes `data` to `path`, which must be a regular file or not exist (`checkReplaceable`).
    public static func write(_ data: Data, to path: String) throws {
        let (temporary, fd) = try createTemporaryFile(for: path)
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

    /// Creates (empty) the temporary file a write to `path` goes through, after checking that `path` may be
    /// replaced (`checkReplaceable`); returns its path and an open descriptor for writing. Finish with `commit`.
    public static func createTemporaryFile(for path: String) throws -> (path: String, descriptor: Int32) {
        try checkReplaceable(path)
        let temporary = temporaryPath(for: path)
        // O_NOFOLLOW | O_NONBLOCK: a link or a FIFO left under the temporary name is refused instead of followed
        // or waited on.
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0o644)
        guard fd >= 0 else { throw temporaryFileError(for: path, temporary) }
        var info = stat()
        guard fstat(fd, &info) == 0, info.st_mode & S_IFMT == S_IFREG else {
            close(fd)
            throw WriteError(path: path, reason: "the temporary file \(temporary) exists and is not a regular file. "
                             + "Fix: remove it")
        }
        // Writes block as usual from here on.
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK)
        return (temporary, fd)
    }

    /// A sibling path for the temporary file: same directory (so rename is atomic), hidden, unique per process.
    public static func temporaryPath(for path: String) -> String {
        let url = URL(fileURLWithPath: path)
        let name = ".\(url.lastPathComponent).tmp-\(getpid())"
        return url.deletingLastPathComponent().appendingPathComponent(name).path
    }

    /// The directory part of `path`: "." for a bare name, "/" for a name in the root. (Foundation's
    /// `NSString.deletingLastPathComponent` traps on a one-character name such as "x" in Swift 6.3 on Linux.)
    public static func directory(of path: String) -> String {
        var p = Substring(path)
        while p.count > 1, p.hasSuffix("/") { p = p.dropLast() }
        guard let slash = p.lastIndex(of: "/") else { return "." }
        var directory = p[..<slash]
        while directory.count > 1, directory.hasSuffix("/") { directory = directory.dropLast() }
        return directory.isEmpty ? "/" : String(directory)
    }

    /// Throws unless `path` is a regular file or does not exist (a link is judged by what it points to). A write
    /// renames a new file over its path: over a device node, a FIFO or a socket that would replace the node
    /// itself with a regular file (run as root against /dev/null, it breaks the system), and a directory cannot
    /// be replaced at all. Every writer of this module checks, so every command's `-o` refuses them alike.
    public static func checkReplaceable(_ path: String) throws {
        var info = stat()
        // Nothing there (or a dangling link), or a path that cannot be looked at: the write itself then says why.
        guard stat(path, &info) == 0 else { return }
        switch info.st_mode & S_IFMT {
        case S_IFREG: return
        case S_IFDIR:
            throw WriteError(path: path, reason: "it is a directory, not a file. Fix: give the path of a file "
                             + "(inside it, or elsewhere)")
        default: break
        }
        let kind = RegularFile.kind(of: info.st_mode)
        throw WriteError(path: path, reason: "it is \(kind), which writing (a new file renamed over the path) would "
                         + "replace. Fix: give the path of a regular file, or of one that does not exist yet")
    }

    /// Why the temporary file next to `path` could not be created, with the fix.
    static func temporaryFileError(for path: String, _ temporary: String) -> WriteError {
        let code = errno
        let directory = directory(of: path)
        let fix: String
        switch code {
        case ENOENT, ENOTDIR:
            var info = stat()
            fix = stat(directory, &info) == 0 && info.st_mode & S_IFMT == S_IFDIR
                ? "\(directory) takes no new files (a virtual file system such as /proc or /sys); write elsewhere"
                : "the directory \(directory) does not exist; create it or write elsewhere"
        case EACCES, EPERM: fix = "this user may not create files in \(directory); write elsewhere or change its permissions"
        case EROFS: fix = "\(directory) is on a read-only file system; write elsewhere"
        case ENOSPC, EDQUOT: fix = "free space on the file system holding \(directory)"
        case ENAMETOOLONG: fix = "give a shorter name (at most 255 bytes a name, 4095 a path)"
        default: fix = "write elsewhere"
        }
        return WriteError(path: path, reason: "cannot create the temporary file \(temporary): "
                          + "\(String(cString: strerror(code))). Fix: \(fix)")
    }

    /// Renames a complete, fsynced temporary file over `path` (which must be a regular file or not exist,
    /// `checkReplaceable`) and fsyncs the directory.
    public static func commit(temporary: String, to path: String) throws {
        do { try checkReplaceable(path) } catch {
            unlink(temporary)
            throw error
        }
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
        let directory = directory(of: path)
        let fd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd >= 0 {
            fsync(fd)
            close(fd)
        }
    }

    /// Bytes an unprivileged writer can still put on the file system holding `directory`, or nil when it cannot
    /// be asked.
    public static func availableBytes(in directory: String) -> Int? {
        var info = statvfs()
        guard statvfs(directory, &info) == 0 else { return nil }
        let (bytes, overflow) = Int(info.f_bavail).multipliedReportingOverflow(by: Int(info.f_frsize))
        return overflow ? Int.max : bytes
    }

    /// Creates a directory and its missing parents, failing with the system's reason (`File name too long`,
    /// `Not a directory`, `No space left on device`) instead of a Foundation error code.
    public static func createDirectory(atPath path: String) throws {
        guard !path.isEmpty else { throw WriteError(path: path, reason: "the path is empty") }
        var current = path.hasPrefix("/") ? "" : "."
        for component in path.split(separator: "/", omittingEmptySubsequences: true) {
            current += "/" + component
            if mkdir(current, 0o755) != 0, errno != EEXIST { throw WriteError(path: path, reason: errnoText()) }
        }
        var info = stat()
        guard stat(path, &info) == 0 else { throw WriteError(path: path, reason: errnoText()) }
        guard info.st_mode & S_IFMT == S_IFDIR else { throw WriteError(path: path, reason: "it exists and is not a directory") }
    }

    /// Removes the temporary files that writes killed part-way left in `directory`: names of the form
    /// `.<target>.tmp-<pid>` (what `temporaryPath(for:)` makes) whose `<target>` satisfies `isTarget` and whose
    /// process no longer runs (a live process, this one included, may still be writing its file). Returns the
    /// paths removed; a file that cannot be removed is left and not listed.
    @discardableResult
    public static func removeAbandonedTemporaries(in directory: String, for isTarget: (String) -> Bool) -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        var removed: [String] = []
        for name in names.sorted() {
            guard let (target, pid) = temporaryName(name), isTarget(target), !isRunning(pid) else { continue }
            let path = (directory as NSString).appendingPathComponent(name)
            var info = stat()
            // Only regular files: a directory or a link of that name is not a temporary file this code made.
            guard lstat(path, &info) == 0, info.st_mode & S_IFMT == S_IFREG, unlink(path) == 0 else { continue }
            removed.append(path)
        }
        return removed
    }

    /// `(target, pid)` for a name `temporaryPath(for:)` could have made, else nil.
    static func temporaryName(_ name: String) -> (target: String, pid: pid_t)? {
        guard name.hasPrefix("."), let marker = name.range(of: ".tmp-", options: .backwards) else { return nil }
        let digits = name[marker.upperBound...]
        guard !digits.isEmpty, digits.allSatisfy(\.isASCII), digits.allSatisfy(\.isNumber), let pid = pid_t(digits), pid > 0
        else { return nil }
        let target = String(name[name.index(after: name.startIndex)..<marker.lowerBound])
        return target.isEmpty ? nil : (target, pid)
    }

    /// Whether process `pid` exists (this process counts as running).
    static func isRunning(_ pid: pid_t) -> Bool {
        if pid == getpid() { return true }
        return kill(pid, 0) == 0 || errno == EPERM
    }

    static func errnoText() -> String { String(cString: strerror(errno)) }
}
