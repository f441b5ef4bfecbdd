import Testing
#if canImport(Glibc)
import Glibc
#endif
import JSON
import CNI
@testable import BridgePlugin

let delVariables = with(addVariables, ["CNI_COMMAND": "DEL", "CNI_NETNS": nil])

func logging(_ scratch: Scratch, level: String? = nil, file: String = "plugin.log", maxSize: Int? = nil) -> String {
    var extra = #""logFile":"\#(scratch.file(file))""#
    if let level { extra += #","logLevel":"\#(level)""# }
    if let maxSize { extra += #","logMaxSize":\#(maxSize)"# }
    return extra
}

func lines(_ text: String?) -> [Substring] { (text ?? "").split(separator: "\n") }

@Suite struct InvocationLogTests {
    @Test func infoLogsOneLinePerInvocationWithTheVerbAndItsOutcome() {
        let scratch = Scratch()
        defer { scratch.remove() }
        let good = config(dataDir: scratch.file("leases"), extra: logging(scratch))
        #expect(run(delVariables, good).exitCode == 0)
        let bad = config(dataDir: scratch.file("leases"), extra: logging(scratch), ipam: #""subnet":"10.244.1.0/33""#)
        #expect(run(addVariables, bad).exitCode == 1)
        let log = lines(scratch.read("plugin.log"))
        #expect(log.count == 2)
        #expect(log.first?.contains(" DEL container=ctr1 netns=\"\" ifname=eth0 network=podnet ok duration=") == true)
        #expect(
            log.last?.contains(
                " ADD container=ctr1 netns=/run/netns/pod1 ifname=eth0 network=podnet error code=7 msg=\"invalid network configuration: ipam.subnet"
            ) == true)
        #expect(log.allSatisfy { $0.wholeMatch(of: /\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z pid=\d+ .* duration=\d+\.\d{3}ms/) != nil })
        #expect(!(log.first?.contains("stdin=") ?? true))
    }

    @Test func errorLevelLogsOnlyFailures() {
        let scratch = Scratch()
        defer { scratch.remove() }
        let extra = logging(scratch, level: "error")
        #expect(run(delVariables, config(dataDir: scratch.file("leases"), extra: extra)).exitCode == 0)
        #expect(run(["CNI_COMMAND": "FROB"], config(dataDir: scratch.file("leases"), extra: extra)).exitCode == 1)
        let log = lines(scratch.read("plugin.log"))
        #expect(log.count == 1)
        #expect(log.first?.contains(" FROB container=\"\" netns=\"\" ifname=\"\" network=podnet error code=4 msg=") == true)
    }

    @Test func debugAddsTheWholeStdinAndStdoutOnTheSameLine() {
        let scratch = Scratch()
        defer { scratch.remove() }
        let text = config(
            version: "0.4.0", dataDir: scratch.file("leases"), extra: logging(scratch, level: "debug"), ipam: #""subnet":"bad""#
        )
        .replacingFirst("{", with: "{\n  ")
        let r = run(addVariables, text)
        let log = lines(scratch.read("plugin.log"))
        #expect(log.count == 1)
        let escapedStdin = value(text)
        #expect(escapedStdin.contains("\\n"))
        #expect(log.first?.contains(" stdin=\(escapedStdin) stdout=\(value(String(r.stdout.dropLast())))") == true)
    }

    @Test func invalidLogSettingsAreCode7() {
        let scratch = Scratch()
        defer { scratch.remove() }
        for extra in [
            #""logFile":"relative.log""#, #""logFile":"/tmp/x/""#, #""logFile":7"#,
            logging(scratch, level: "verbose"), logging(scratch, maxSize: 10),
        ] {
            let r = run(delVariables, config(dataDir: scratch.file("leases"), extra: extra))
            #expect(r.json?["code"]?.intValue == 7, "\(extra)")
        }
        #expect(scratch.read("plugin.log") == nil)
    }

    @Test(arguments: ["no/such/dir/plugin.log", "dir-as-log", "fifo", "symlink"])
    func aLogThatCannotBeWrittenNeverFailsTheVerb(_ name: String) {
        let scratch = Scratch()
        defer { scratch.remove() }
        mkdir(scratch.file("dir-as-log"), 0o755)
        mkfifo(scratch.file("fifo"), 0o644)
        symlink(scratch.file("target"), scratch.file("symlink"))
        let r = run(delVariables, config(dataDir: scratch.file("leases"), extra: logging(scratch, file: name)))
        #expect(r.exitCode == 0)
        #expect(r.stdout == "")
        #expect(scratch.read("target") == nil)  // never written through the symlink
    }

    @Test func aMissingLastDirectoryIsCreated() {
        let scratch = Scratch()
        defer { scratch.remove() }
        #expect(run(delVariables, config(dataDir: scratch.file("leases"), extra: logging(scratch, file: "logs/plugin.log"))).exitCode == 0)
        #expect(lines(scratch.read("logs/plugin.log")).count == 1)
    }

    @Test func theFileIsRotatedBeforeItGrowsPastItsCap() {
        let scratch = Scratch()
        defer { scratch.remove() }
        let log = LogFile(path: scratch.file("plugin.log"), maxSize: 1024)
        for i in 0..<100 { log.append(Array("record \(i) \(String(repeating: "x", count: 80))\n".utf8)) }
        #expect((scratch.size("plugin.log") ?? 0) <= 1024)
        #expect((scratch.size("plugin.log.1") ?? 0) <= 1024)
        let current = lines(scratch.read("plugin.log"))
        let previous = lines(scratch.read("plugin.log.1"))
        #expect(current.last?.hasPrefix("record 99 ") == true)
        // The two files hold the newest records in order, every one whole.
        let kept = previous + current
        let first = 100 - kept.count
        #expect(kept.enumerated().allSatisfy { $0.element == "record \(first + $0.offset) \(String(repeating: "x", count: 80))" })
        #expect(kept.count >= 10)
    }

    @Test func aRecordLargerThanTheCapStillGoesIntoAnEmptyFile() {
        let scratch = Scratch()
        defer { scratch.remove() }
        LogFile(path: scratch.file("plugin.log"), maxSize: 1024).append(Array((String(repeating: "y", count: 2000) + "\n").utf8))
        #expect(scratch.size("plugin.log") == 2001)
        #expect(scratch.size("plugin.log.1") == nil)
    }

    @Test func valuesWithSpacesQuotesOrControlCharactersAreQuotedAndEscaped() {
        #expect(value("eth0") == "eth0")
        #expect(value("") == "\"\"")
        #expect(value("a b") == "\"a b\"")
        #expect(value("k=v") == "\"k=v\"")
        #expect(value("say \"hi\"\\\n\t\u{1}") == #""say \"hi\"\\\n\t\u0001""#)
        #expect(value("naïve") == "\"naïve\"")
    }

    @Test func timesAreUTCWithMilliseconds() {
        #expect(utc(timespec(tv_sec: 0, tv_nsec: 0)) == "1970-01-01T00:00:00.000Z")
        #expect(utc(timespec(tv_sec: 1_700_000_000, tv_nsec: 123_456_789)) == "2023-11-14T22:13:20.123Z")
        #expect(utc(timespec(tv_sec: 1_709_208_000, tv_nsec: 999_999_999)) == "2024-02-29T12:00:00.999Z")
        // Seconds about every 116 days from 1970 to 2128 agree with gmtime_r.
        for seconds in stride(from: 0, to: 5_000_000_000, by: 9_999_937) {
            var t = seconds
            var parts = tm()
            gmtime_r(&t, &parts)
            let expected =
                "\(parts.tm_year + 1900)-\(padded(Int(parts.tm_mon) + 1, to: 2))-\(padded(Int(parts.tm_mday), to: 2))T"
                + "\(padded(Int(parts.tm_hour), to: 2)):\(padded(Int(parts.tm_min), to: 2)):\(padded(Int(parts.tm_sec), to: 2)).000Z"
            #expect(utc(timespec(tv_sec: seconds, tv_nsec: 0)) == expected)
        }
    }

    @Test func numbersArePaddedDecimals() {
        for (n, width, text) in [
            (0, 1, "0"), (7, 3, "007"), (1234, 2, "1234"), (-5, 1, "-5"), (Int.max, 1, String(Int.max)), (Int.min, 1, String(Int.min)),
        ] {
            var line = LogLine()
            line.append(n, width: width)
            #expect(line.text == text)
        }
    }

    @Test func addressesAreReadFromResultsOfEveryVersion() throws {
        let current = try JSONValue.parse(Array(#"{"ips":[{"address":"10.244.1.2/24"},{"address":"fd00::2/64"}]}"#.utf8))
        let old = try JSONValue.parse(Array(#"{"ip4":{"ip":"10.244.1.2/24"},"ip6":{"ip":"fd00::2/64"}}"#.utf8))
        #expect(InvocationLog.addresses(in: current) == ["10.244.1.2/24", "fd00::2/64"])
        #expect(InvocationLog.addresses(in: old) == ["10.244.1.2/24", "fd00::2/64"])
    }
}

extension String {
    func replacingFirst(_ target: Character, with replacement: String) -> String {
        guard let i = firstIndex(of: target) else { return self }
        return String(self[..<i]) + replacement + String(self[index(after: i)...])
    }
}

func value(_ text: String) -> String {
    var line = LogLine()
    line.appendValue(text)
    return line.text
}

func utc(_ t: timespec) -> String {
    var line = LogLine()
    line.appendUTC(t)
    return line.text
}

func padded(_ n: Int, to width: Int) -> String {
    let digits = String(n)
    return String(repeating: "0", count: max(0, width - digits.count)) + digits
}
