#if canImport(Glibc)
import Glibc
#endif
import Addresses
import CNI
import JSON
@testable import BridgePlugin

/// One node for a verb test: fake namespaces, a real lease store in a scratch directory, and the
/// plugin driven as a runtime drives it (variables and a config in, the printed JSON out).
final class VerbHarness {
    let scratch = Scratch()
    let namespaces = FakeNamespaces()
    let network = "podnet"
    static let podPath = "/run/netns/pod1"

    var node: FakeNamespace { namespaces.nodeNamespace }
    var pod: FakeNamespace { namespaces.pod(VerbHarness.podPath) }

    init() { namespaces.pod(VerbHarness.podPath) }
    deinit { scratch.remove() }

    /// What one invocation printed, and the error it ended with.
    struct Run {
        var exitCode: Int32
        var json: JSONValue?
        var error: CNIError?
        var code: Int? { json?["code"]?.intValue }
        var details: String { json?["details"]?.stringValue ?? "" }
    }

    func config(subnet: String = "10.244.1.0/24", extra: String = "", ipam: String? = nil) -> String {
        let ipamSection = ipam ?? #"{"type":"host-local","subnet":"\#(subnet)","dataDir":"\#(scratch.path)"}"#
        return
            #"{"cniVersion":"1.1.0","name":"\#(network)","type":"bridge-ipam","bridge":"cni0","isGateway":true,"isDefaultGateway":true\#(extra.isEmpty ? "" : "," + extra),"ipam":\#(ipamSection)}"#
    }

    @available(*, noasync)
    @discardableResult
    func run(
        _ command: String, container: String = "ctr1", ifname: String = "eth0", netns: String = VerbHarness.podPath,
        config: String? = nil, system: SubnetFileWait.System = .kernel
    ) -> Run {
        let stdin = Array((config ?? self.config()).utf8)
        let variables = EnvironmentVariables([
            "CNI_COMMAND": command, "CNI_CONTAINERID": container, "CNI_NETNS": netns, "CNI_IFNAME": ifname, "CNI_PATH": "/nonexistent",
        ])
        let object: Result<JSONObject, CNIError>
        do throws(CNIError) { object = .success(try NetworkConfig.decodeObject(stdin)) } catch { object = .failure(error) }
        let (outcome, reply) = Plugin.perform(variables, config: object, stdin: stdin, namespaces: namespaces, system: system)
        var error: CNIError?
        if case .failed(let e) = reply { error = e }
        return Run(exitCode: outcome.exitCode, json: try? JSONValue.parse(Array(outcome.stdout.utf8)), error: error)
    }

    /// The network's lease files (addresses), sorted.
    var leases: [String] {
        guard let dir = opendir(scratch.path + "/" + network) else { return [] }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if IPAddress(name) != nil { names.append(name) }
        }
        return names.sorted()
    }

    /// Whether the network's lease lock is free: another open file of the lock can take it
    /// (flock locks belong to open files, so this sees a lock held in this very process). Tried
    /// for up to 2 s: a test running at the same time may be spawning a process, whose copy of
    /// our descriptors holds the lock until its exec closes them; a lock a verb kept stays held.
    var lockIsFree: Bool {
        let fd = open(scratch.path + "/" + network + "/lock", O_RDWR | O_CLOEXEC)
        guard fd >= 0 else { return true }  // never created: never held
        defer { close(fd) }
        var pause = timespec(tv_sec: 0, tv_nsec: 10_000_000)
        for _ in 0..<200 {
            if flock(fd, LOCK_EX | LOCK_NB) == 0 {
                flock(fd, LOCK_UN)
                return true
            }
            nanosleep(&pause, nil)
        }
        return false
    }

    /// The host ends of veths on the node.
    var hostVeths: [String] { node.linkNames.filter { $0.hasPrefix("veth") }.sorted() }

    func result(of run: Run) -> String { run.json?.serialized() ?? "" }
}

/// Fails the test process rather than letting a deadlocked verb hang it.
func withAlarm<T>(seconds: UInt32 = 20, _ body: () throws -> T) rethrows -> T {
    alarm(seconds)
    defer { alarm(0) }
    return try body()
}
