import Testing
@testable import CNI

func environment(_ vars: [String: String]) throws(CNIError) -> Environment {
    try Environment.parse { vars[$0] }
}

let addVars = [
    "CNI_COMMAND": "ADD", "CNI_CONTAINERID": "abc", "CNI_NETNS": "/run/netns/x", "CNI_IFNAME": "eth0", "CNI_PATH": "/opt/cni/bin",
]

@Suite struct EnvironmentTests {
    @Test func aCompleteAddEnvironmentParses() throws {
        var vars = addVars
        vars["CNI_ARGS"] = "IgnoreUnknown=1;K8S_POD_NAME=web;IP=10.244.1.9"
        let env = try environment(vars)
        #expect(env.command == .add)
        #expect(env.arg("IP") == "10.244.1.9")
        #expect(env.path == ["/opt/cni/bin"])
    }

    @Test func everyMissingVariableIsNamedInOneCode4Error() {
        do {
            _ = try environment(["CNI_COMMAND": "ADD"])
            Issue.record("expected a failure")
        } catch {
            #expect(error.code == 4)
            for name in ["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"] { #expect(error.msg.contains(name)) }
        }
    }

    @Test(arguments: [
        ("CNI_COMMAND", "FROB"), ("CNI_CONTAINERID", "-bad"), ("CNI_CONTAINERID", "a/b"),
        ("CNI_IFNAME", "a-name-longer-than-15"), ("CNI_IFNAME", "a/b"), ("CNI_IFNAME", ".."), ("CNI_ARGS", "novalue"),
    ])
    func invalidValuesAreCode4(_ name: String, _ value: String) {
        var vars = addVars
        vars[name] = value
        #expect(throws: CNIError.self) { try environment(vars) }
        do { _ = try environment(vars) } catch { #expect(error.code == 4) }
    }

    @Test func delNeedsNoNetns() throws {
        var vars = addVars
        vars["CNI_COMMAND"] = "DEL"
        vars["CNI_NETNS"] = nil
        #expect(try environment(vars).netns == "")
    }

    @Test func versionIgnoresEverythingElse() throws {
        // podman sets the other variables to "dummy" for VERSION.
        #expect(try environment(["CNI_COMMAND": "VERSION", "CNI_IFNAME": "dummy/x"]).command == .version)
    }
}
