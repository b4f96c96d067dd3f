#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// Opening a file that must be a regular file. A FIFO would block the open (or the read) until a writer comes,
/// a device such as /dev/zero never ends, and a directory is no file: each is refused, by name, before a byte is
/// read.
public enum RegularFile {
    public enum OpenFailure: Error, Equatable, CustomStringConvertible {
        /// Nothing at the path.
        case missing
        /// Something other than a regular file: its kind in words ("a FIFO (named pipe)").
        case notRegular(kind: String)
        /// The system's reason ("Permission denied").
        case unreadable(reason: String)

        /// "does not exist", "is a FIFO (named pipe), not a file", "cannot be read: Permission denied".
        public var description: String {
            switch self {
            case .missing: return "does not exist"
            case .notRegular(let kind): return "is \(kind), not a file"
            case .unreadable(let reason): return "cannot be read: \(reason)"
            }
        }
    }

    /// The whole content of the regular file at `path` (following links), refused as `openForReading` refuses.
    public static func read(_ path: String) throws(OpenFailure) -> Data {
        let handle = try openForReading(path)
        do { return try handle.readToEnd() ?? Data() } catch { throw .unreadable(reason: "\(error)") }
    }

    /// "a character device", "a FIFO (named pipe)", "a directory", … for the file type bits of `mode`.
    public static func kind(of mode: mode_t) -> String {
        switch mode & S_IFMT {
        case S_IFREG: return "a regular file"
        case S_IFDIR: return "a directory"
        case S_IFCHR: return "a character device"
        case S_IFBLK: return "a block device"
        case S_IFIFO: return "a FIFO (named pipe)"
        case S_IFSOCK: return "a socket"
        case S_IFLNK: return "a symbolic link"
        default: return "not a regular file"
        }
    }

    /// Opens `path` (following links) for reading, refusing anything but a regular file.
    public static func openForReading(_ path: String) throws(OpenFailure) -> FileHandle {
        // O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused by type after fstat.
        let fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else {
            if errno == ENOENT { throw .missing }
            throw .unreadable(reason: String(cString: strerror(errno)))
        }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            let reason = String(cString: strerror(errno))
            close(fd)
            throw .unreadable(reason: reason)
        }
        guard info.st_mode & S_IFMT == S_IFREG else {
            close(fd)
            throw .notRegular(kind: kind(of: info.st_mode))
        }
        // Reads block as usual from here on.
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK)
        return FileHandle(fileDescriptor: fd, closeOnDealloc: true)
    }
}
