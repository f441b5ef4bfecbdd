#if canImport(Glibc)
import Glibc
#endif
import CNI
import JSON

/// The config's `logFile`: what the plugin was asked and what it answered, one line per
/// invocation (stamped with the time it started), e.g.
///
///     2026-11-25T15:20:01.123Z pid=4242 ADD container=ctr1 netns=/run/netns/pod1 ifname=eth0 network=podnet ok ips=10.244.1.10/24 duration=2.315ms
///     2026-11-25T15:20:07.004Z pid=4250 ADD container=ctr2 netns=/run/netns/pod2 ifname=eth0 network=podnet error code=100 msg="..." duration=0.912ms
///
/// Values are quoted and escaped when they hold spaces, quotes or control characters, so a line
/// is always one line. At `debug` the line also carries `stdin=` and `stdout=`. Writing it can
/// never fail the verb: a log that cannot be written is skipped.
struct InvocationLog {
    let settings: LogSettings

    /// When an invocation started: the wall clock for the line, the monotonic clock for the duration.
    struct Start {
        let wall: timespec
        let monotonic: timespec

        static func now() -> Start {
            var wall = timespec()
            var monotonic = timespec()
            clock_gettime(CLOCK_REALTIME, &wall)
            clock_gettime(CLOCK_MONOTONIC, &monotonic)
            return Start(wall: wall, monotonic: monotonic)
        }

        /// Nanoseconds since the start.
        var elapsed: Int {
            var now = timespec()
            clock_gettime(CLOCK_MONOTONIC, &now)
            return (now.tv_sec - monotonic.tv_sec) * 1_000_000_000 + (now.tv_nsec - monotonic.tv_nsec)
        }
    }

    /// Everything one line reports.
    struct Invocation {
        var variables: EnvironmentVariables
        var network: String?
        var stdin: [UInt8]
        var stdout: String
        var reply: Plugin.Reply
        var started: Start

        var failed: Bool {
            if case .failed = reply { return true }
            return false
        }
    }

    func record(_ invocation: Invocation) {
        if settings.level == .error && !invocation.failed { return }
        let line = InvocationLog.line(invocation, level: settings.level, elapsed: invocation.started.elapsed)
        LogFile(path: settings.path, maxSize: settings.maxSize).append(line.bytes)
    }

    /// The line for `invocation`, newline included.
    static func line(_ invocation: Invocation, level: LogSettings.Level, elapsed: Int) -> LogLine {
        let v = invocation.variables
        var line = LogLine()
        line.appendUTC(invocation.started.wall)
        line.append(" pid=")
        line.append(Int(getpid()))
        line.field(" ", v["CNI_COMMAND"] ?? "-")
        line.field(" container=", v["CNI_CONTAINERID"] ?? "")
        line.field(" netns=", v["CNI_NETNS"] ?? "")
        line.field(" ifname=", v["CNI_IFNAME"] ?? "")
        if let network = invocation.network {
            line.field(" network=", network)
        }
        switch invocation.reply {
        case .done: line.append(" ok")
        case .result(let result): line.field(" ok ips=", addresses(in: result).joined(separator: ","))
        case .failed(let error):
            line.append(" error code=")
            line.append(error.code)
            line.field(" msg=", error.msg)
            if !error.details.isEmpty {
                line.field(" details=", error.details)
            }
        }
        let microseconds = max(elapsed, 0) / 1000
        line.append(" duration=")
        line.append(microseconds / 1000)
        line.append(".")
        line.append(microseconds % 1000, width: 3)
        line.append("ms")
        if level == .debug {
            line.field(" stdin=", invocation.stdin)
            line.field(" stdout=", invocation.stdout.utf8.last == 0x0A ? invocation.stdout.utf8.dropLast() : invocation.stdout.utf8[...])
        }
        line.append("\n")
        return line
    }

    /// The addresses in an ADD result of any version (`ips` from 0.3.0 on, `ip4`/`ip6` before).
    static func addresses(in result: JSONValue) -> [String] {
        if let ips = result["ips"]?.arrayValue { return ips.compactMap { $0["address"]?.stringValue } }
        return ["ip4", "ip6"].compactMap { result[$0]?["ip"]?.stringValue }
    }
}
