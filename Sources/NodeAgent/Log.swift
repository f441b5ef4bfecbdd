#if canImport(Glibc)
import Glibc
#endif

/// The agent's log: one line per event on stderr, each written with a single write(2) and
/// stamped with UTC wall-clock time to the millisecond (so convergence can be read off the log).
public enum Log {
    public static func line(_ text: String) {
        let now = Clock.wall()
        var parts = tm()
        var seconds = time_t(now.seconds)
        gmtime_r(&seconds, &parts)
        func two(_ v: Int32) -> String { v < 10 ? "0\(v)" : "\(v)" }
        let millis = now.nanoseconds / 1_000_000
        let ms = millis < 10 ? "00\(millis)" : millis < 100 ? "0\(millis)" : "\(millis)"
        write("\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec)).\(ms) bridge-ipam-agent: \(text)\n")
    }

    /// Text to stderr in one write(2), so lines of concurrent writers never interleave.
    public static func write(_ text: String) {
        let bytes = Array(text.utf8)
        _ = bytes.withUnsafeBytes { Glibc.write(2, $0.baseAddress, $0.count) }
    }
}

/// The agent's clocks: monotonic for deadlines (wall-clock jumps cannot move them), wall for
/// what people and Prometheus read.
public enum Clock {
    public static func monotonic() -> Double {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
    }

    public static func wall() -> (seconds: Int, nanoseconds: Int) {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return (Int(now.tv_sec), Int(now.tv_nsec))
    }

    public static func wallSeconds() -> Double {
        let now = wall()
        return Double(now.seconds) + Double(now.nanoseconds) / 1e9
    }
}
