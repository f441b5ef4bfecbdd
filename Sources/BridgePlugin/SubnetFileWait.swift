#if canImport(Glibc)
import Glibc
#endif
import CNI
import JSON

/// The reboot window: /run is empty after a reboot, while /etc/cni/net.d keeps the conflist, so
/// the runtime sees a ready network and starts pods before the node's agent is back and has
/// rewritten `ipam.subnetFile`. Rather than failing every such ADD at once, ADD waits for the file
/// to appear, polling every 50 ms, for at most `ipam.subnetFileWait` seconds (default 10, 0 to
/// 60), and only then fails with code 11 (try again later) naming the file and what writes it.
/// The wait happens before the config is parsed, so no lease lock is held and other ADDs, DELs
/// and GCs go on meanwhile. Only a missing file (ENOENT) is waited for: a file that exists but is
/// unreadable or malformed fails at once with code 7, as before.
struct SubnetFileWait {
    static let defaultSeconds = 10
    static let maxSeconds = 60
    static let pollNanoseconds = 50_000_000

    /// The file's existence, a monotonic clock and a pause: the kernel's, or a test's.
    struct System {
        var exists: (String) -> Bool
        var now: () -> Double
        var pause: () -> Void

        static var kernel: System {
            System(
                exists: { path in
                    var status = stat()
                    return stat(path, &status) == 0 || errno != ENOENT
                },
                now: {
                    var t = timespec()
                    clock_gettime(CLOCK_MONOTONIC, &t)
                    return Double(t.tv_sec) + Double(t.tv_nsec) / 1e9
                },
                pause: {
                    var delay = timespec(tv_sec: 0, tv_nsec: SubnetFileWait.pollNanoseconds)
                    nanosleep(&delay, nil)
                })
        }
    }

    let path: String
    let seconds: Int

    /// The wait a config asks for; nil when it names no subnet file (or is not ours to judge:
    /// parsing reports a malformed config).
    init?(config: JSONObject) throws(CNIError) {
        guard let ipam = config["ipam"]?.objectValue, let path = ipam["subnetFile"]?.stringValue else { return nil }
        self.path = path
        guard let value = ipam["subnetFileWait"] else {
            seconds = SubnetFileWait.defaultSeconds
            return
        }
        guard let s = value.intValue, (0...SubnetFileWait.maxSeconds).contains(s) else {
            throw CNIError(
                .invalidConfig,
                "invalid network configuration: ipam.subnetFileWait must be a whole number of seconds from 0 to \(SubnetFileWait.maxSeconds)"
            )
        }
        seconds = s
    }

    /// Returns once the file exists; throws code 11 when it still does not after the wait.
    func untilPresent(_ system: System = .kernel) throws(CNIError) {
        let end = system.now() + Double(seconds)
        while !system.exists(path) {
            guard system.now() < end else {
                throw CNIError(
                    .tryAgainLater,
                    "try again later: ipam.subnetFile \(path) does not exist yet (waited \(seconds) s)",
                    details:
                        "the node's agent (bridge-ipam-agent, deploy/bridge-ipam.yaml's DaemonSet) writes it once it has read the node's podCIDR; after a reboot /run is empty until the agent runs again"
                )
            }
            system.pause()
        }
    }
}
