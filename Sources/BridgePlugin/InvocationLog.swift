#if canImport(Glibc)
import Glibc
#endif
import CNI
import JSON

/// The config's `logFile`: what the plugin was asked and what it answered, one line per
/// invocation, e.g.
///
///     2026-11-25T15:20:01.123Z pid=4242 ADD container=ctr1 netns=/run/netns/pod1 ifname=eth0 network=podnet ok ips=10.244.1.10/24 duration=2.315ms
///     2026-11-25T15:20:07.004Z pid=4250 ADD container=ctr2 netns=/run/netns/pod2 ifname=eth0 network=podnet error code=100 msg="..." duration=0.912ms
///
/// Values are quoted and escaped when they hold spaces, quotes or control characters, so a line
/// is always one line. At `debug` the line also carries `stdin=` and `stdout=`. Writing it can
/// never fail the verb: a log that cannot be written is skipped.
struct InvocationLog {
    let settings: LogSettings

    /// A monotonic instant, for the duration.
    struct Instant {
        let nanoseconds: Int

        static func now() -> Instant {
            var t = timespec()
            clock_gettime(CLOCK_MONOTONIC, &t)
            return Instant(nanoseconds: t.tv_sec * 1_000_000_000 + t.tv_nsec)
        }
    }

    /// Everything one line reports.
    struct Invocation {
        var variables: [String: String]
        var network: String?
        var stdin: [UInt8]
        var stdout: String
        var reply: Plugin.Reply
        var started: Instant

        var failed: Bool {
            if case .failed = reply { return true }
            return false
        }
    }

    func record(_ invocation: Invocation) {
        if settings.level == .error && !invocation.failed { return }
        let line = InvocationLog.line(invocation, level: settings.level, at: InvocationLog.wallClock(),
                                      elapsed: InvocationLog.Instant.now().nanoseconds - invocation.started.nanoseconds)
        LogFile(path: settings.path, maxSize: settings.maxSize).append(Array(line.utf8))
    }

    /// The line for `invocation`, newline included.
    static func line(_ invocation: Invocation, level: LogSettings.Level, at time: String, elapsed: Int) -> String {
        let v = invocation.variables
        var line = "\(time) pid=\(getpid()) \(value(v["CNI_COMMAND"] ?? "-"))"
        line += " container=\(value(v["CNI_CONTAINERID"] ?? ""))"
        line += " netns=\(value(v["CNI_NETNS"] ?? ""))"
        line += " ifname=\(value(v["CNI_IFNAME"] ?? ""))"
        if let network = invocation.network { line += " network=\(value(network))" }
        switch invocation.reply {
        case .done: line += " ok"
        case .result(let result): line += " ok ips=\(value(addresses(in: result).joined(separator: ",")))"
        case .failed(let error):
            line += " error code=\(error.code) msg=\(value(error.msg))"
            if !error.details.isEmpty { line += " details=\(value(error.details))" }
        }
        let microseconds = max(elapsed, 0) / 1000
        line += " duration=\(microseconds / 1000).\(padded(microseconds % 1000, to: 3))ms"
        if level == .debug {
            line += " stdin=\(value(String(decoding: invocation.stdin, as: UTF8.self)))"
            line += " stdout=\(value(invocation.stdout.hasSuffix("\n") ? String(invocation.stdout.dropLast()) : invocation.stdout))"
        }
        return line + "\n"
    }

    /// The addresses in an ADD result of any version (`ips` from 0.3.0 on, `ip4`/`ip6` before).
    static func addresses(in result: JSONValue) -> [String] {
        if let ips = result["ips"]?.arrayValue { return ips.compactMap { $0["address"]?.stringValue } }
        return ["ip4", "ip6"].compactMap { result[$0]?["ip"]?.stringValue }
    }

    /// `text` as it is when it is a plain word, otherwise quoted with `\` escapes (logfmt style).
    static func value(_ text: String) -> String {
        let plain = !text.isEmpty && text.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F && $0 != 0x22 && $0 != 0x5C && $0 != 0x3D }
        if plain { return text }
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 || scalar.value == 0x7F {
                    out += "\\u00" + padded(Int(scalar.value), to: 2, radix: 16)
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }

    /// Now, in UTC with milliseconds: 2026-11-25T15:20:01.123Z.
    static func wallClock() -> String {
        var t = timespec()
        clock_gettime(CLOCK_REALTIME, &t)
        var seconds = t.tv_sec
        var parts = tm()
        gmtime_r(&seconds, &parts)
        return "\(parts.tm_year + 1900)-\(padded(Int(parts.tm_mon) + 1, to: 2))-\(padded(Int(parts.tm_mday), to: 2))"
            + "T\(padded(Int(parts.tm_hour), to: 2)):\(padded(Int(parts.tm_min), to: 2)):\(padded(Int(parts.tm_sec), to: 2))"
            + ".\(padded(t.tv_nsec / 1_000_000, to: 3))Z"
    }

    static func padded(_ n: Int, to width: Int, radix: Int = 10) -> String {
        let digits = String(n, radix: radix)
        return String(repeating: "0", count: max(0, width - digits.count)) + digits
    }
}
