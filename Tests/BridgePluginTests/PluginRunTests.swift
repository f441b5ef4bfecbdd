import Testing
#if canImport(Glibc)
import Glibc
#endif
import JSON
import CNI
@testable import BridgePlugin

/// Plugin.run as a runtime drives it, with the environment and stdin given as arguments: the
/// paths that end before any namespace or netlink work, so no root is needed.
func run(_ variables: [String: String], _ stdin: String) -> (exitCode: Int32, stdout: String, json: JSONValue?) {
    let outcome = Plugin.run(environment: EnvironmentVariables(variables), stdin: Array(stdin.utf8))
    return (outcome.exitCode, outcome.stdout, try? JSONValue.parse(Array(outcome.stdout.utf8)))
}

func config(version: String = "1.1.0", dataDir: String = "/nonexistent", extra: String = "", ipam: String = #""subnet":"10.244.1.0/24""#)
    -> String
{
    #"{"cniVersion":"\#(version)","name":"podnet","type":"bridge-ipam"\#(extra.isEmpty ? "" : "," + extra),"ipam":{"type":"host-local","dataDir":"\#(dataDir)",\#(ipam)}}"#
}

let addVariables = [
    "CNI_COMMAND": "ADD", "CNI_CONTAINERID": "ctr1", "CNI_NETNS": "/run/netns/pod1", "CNI_IFNAME": "eth0", "CNI_PATH": "/opt/cni/bin",
]

func with(_ variables: [String: String], _ changes: [String: String?]) -> [String: String] {
    var v = variables
    for (key, value) in changes { v[key] = value }
    return v
}

@Suite struct PluginRunTests {
    @Test func versionAnswersWithTheInputsVersionAndTheSupportedList() {
        let r = run(["CNI_COMMAND": "VERSION"], #"{"cniVersion":"1.0.0"}"#)
        #expect(r.exitCode == 0)
        #expect(r.json?["cniVersion"]?.stringValue == "1.0.0")
        #expect(
            r.json?["supportedVersions"]?.arrayValue?.compactMap(\.stringValue) == [
                "0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0",
            ])
    }

    @Test func versionWithoutInputAnswersWithTheLatest() {
        let r = run(["CNI_COMMAND": "VERSION", "CNI_NETNS": "dummy"], "")
        #expect(r.exitCode == 0)
        #expect(r.json?["cniVersion"]?.stringValue == "1.1.0")
    }

    @Test func versionWithGarbageInputIsCode6() {
        let r = run(["CNI_COMMAND": "VERSION"], "[1]")
        #expect(r.exitCode == 1)
        #expect(r.json?["code"]?.intValue == 6)
    }

    @Test func noCommandIsCode4InTheConfigsVersion() {
        let r = run([:], config(version: "1.0.0"))
        #expect(r.exitCode == 1)
        #expect(r.json?["code"]?.intValue == 4)
        #expect(r.json?["msg"]?.stringValue == "CNI_COMMAND is not set")
        #expect(r.json?["cniVersion"]?.stringValue == "1.0.0")
    }

    @Test func anUnknownVerbIsCode4NamingIt() {
        let r = run(with(addVariables, ["CNI_COMMAND": "FROB"]), config())
        #expect(r.exitCode == 1)
        #expect(r.json?["code"]?.intValue == 4)
        #expect(r.json?["msg"]?.stringValue?.contains("FROB") == true)
    }

    @Test func everyMissingVariableIsNamed() {
        let r = run(["CNI_COMMAND": "ADD"], config())
        #expect(r.json?["code"]?.intValue == 4)
        for name in ["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"] {
            #expect(r.json?["msg"]?.stringValue?.contains(name) == true)
        }
    }

    @Test func aConfigErrorIsCode7JSONNamingTheField() {
        let r = run(addVariables, config(version: "0.4.0", ipam: #""subnet":"10.244.1.0/33""#))
        #expect(r.exitCode == 1)
        #expect(r.stdout.hasSuffix("}\n"))
        #expect(r.json?["code"]?.intValue == 7)
        #expect(r.json?["cniVersion"]?.stringValue == "0.4.0")
        #expect(r.json?["msg"]?.stringValue?.contains("ipam.subnet") == true)
    }

    @Test func stdinThatIsNotAnObjectIsCode6() {
        #expect(run(addVariables, "{not json").json?["code"]?.intValue == 6)
        #expect(run(addVariables, "").json?["code"]?.intValue == 6)
        #expect(run(addVariables, "[]").json?["code"]?.intValue == 6)
    }

    @Test func anUnsupportedVersionIsCode1EchoingIt() {
        let r = run(addVariables, config(version: "9.9.9"))
        #expect(r.json?["code"]?.intValue == 1)
        #expect(r.json?["cniVersion"]?.stringValue == "9.9.9")
    }

    @Test(arguments: [("CHECK", "0.3.1"), ("GC", "1.0.0"), ("STATUS", "1.0.0")])
    func aVerbTheConfigsVersionPredatesIsCode1(_ verb: String, _ version: String) {
        let r = run(with(addVariables, ["CNI_COMMAND": verb]), config(version: version))
        #expect(r.exitCode == 1)
        #expect(r.json?["code"]?.intValue == 1)
        #expect(r.json?["msg"]?.stringValue?.contains(verb) == true)
    }

    @Test func aDELWithNothingToDeleteSucceedsSilently() {
        let scratch = Scratch()
        defer { scratch.remove() }
        let r = run(with(addVariables, ["CNI_COMMAND": "DEL", "CNI_NETNS": nil]), config(dataDir: scratch.file("leases")))
        #expect(r.exitCode == 0)
        #expect(r.stdout == "")
    }

    @Test func aDelegatedIPAMPluginGetsTheGivenEnvironmentNotTheProcesss() {
        let scratch = Scratch()
        defer { scratch.remove() }
        scratch.write("fake-ipam", "#!/bin/sh\nenv > \(scratch.file("env"))\ncat > \(scratch.file("stdin"))\n", mode: 0o755)
        let stdin = #"{"cniVersion":"1.1.0","name":"podnet","type":"bridge-ipam","ipam":{"type":"fake-ipam"}}"#
        let variables = with(
            addVariables, ["CNI_COMMAND": "DEL", "CNI_NETNS": nil, "CNI_PATH": scratch.path, "ONLY_IN_THE_ARGUMENT": "yes"])
        let r = run(variables, stdin)
        #expect(r.exitCode == 0)
        let env = scratch.read("env") ?? ""
        #expect(env.contains("CNI_COMMAND=DEL\n"))
        #expect(env.contains("CNI_CONTAINERID=ctr1\n"))
        #expect(env.contains("ONLY_IN_THE_ARGUMENT=yes\n"))
        #expect(!env.contains("HOME="))
        #expect(scratch.read("stdin") == stdin)
    }

    @Test func aDelegatedIPAMPluginThatDoesNotReadItsStdinCannotKillUs() {
        let scratch = Scratch()
        defer { scratch.remove() }
        // Exits at once; the config is larger than a pipe's buffer, so our write meets EPIPE.
        scratch.write("fake-ipam", #"#!/bin/sh\#necho '{"cniVersion":"1.1.0","code":11,"msg":"busy"}'\#nexit 1\#n"#, mode: 0o755)
        let stdin =
            #"{"cniVersion":"1.1.0","name":"podnet","type":"bridge-ipam","padding":"\#(String(repeating: "x", count: 256 * 1024))","ipam":{"type":"fake-ipam"}}"#
        let r = run(with(addVariables, ["CNI_COMMAND": "DEL", "CNI_PATH": scratch.path]), stdin)
        #expect(r.json?["code"]?.intValue == 11)
    }

    @Test func aDelegatedIPAMPluginsErrorIsPassedOn() {
        let scratch = Scratch()
        defer { scratch.remove() }
        scratch.write("fake-ipam", #"#!/bin/sh\#necho '{"cniVersion":"1.1.0","code":11,"msg":"busy"}'\#nexit 1\#n"#, mode: 0o755)
        let stdin = #"{"cniVersion":"1.1.0","name":"podnet","type":"bridge-ipam","ipam":{"type":"fake-ipam"}}"#
        let r = run(with(addVariables, ["CNI_COMMAND": "DEL", "CNI_PATH": scratch.path]), stdin)
        #expect(r.exitCode == 1)
        #expect(r.json?["code"]?.intValue == 11)
        #expect(r.json?["msg"]?.stringValue == "busy")
    }
}
