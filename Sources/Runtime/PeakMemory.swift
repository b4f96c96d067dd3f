import Foundation

/// The process's peak resident memory (getrusage's ru_maxrss).
public enum PeakMemory {
    public static var bytes: Int {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return usage.ru_maxrss * 1024
    }
}
