#if canImport(Glibc)
import Glibc
#endif
import CNI
import IPAM
import JSON

/// The plugin's entry point: one invocation, one verb.
public enum Plugin {
    /// What the process prints on stdout and its exit status.
    public struct Outcome: Equatable {
        public var stdout: String
        public var exitCode: Int32
    }

    /// Runs the verb named by the environment on the configuration in `stdin`.
    @available(*, noasync, message: "the plugin enters network namespaces and must stay on one thread")
    public static func run(stdin: [UInt8]) -> Outcome {
        var versionText = CNIVersion.latest.description
        do throws(CNIError) {
            let environment = try Environment.fromProcess()
            if environment.command == .version {
                return Outcome(stdout: try version(stdin: stdin).serialized() + "\n", exitCode: 0)
            }
            // Echo the config's version in errors when we can read it.
            if let text = try? NetworkConfig.versionOnly(stdin) { versionText = text }
            // DEL must clean up also when the node's subnet file is gone (e.g. /run after a
            // reboot, before its agent rewrote it): it releases leases by owner, not by range.
            let config = try NetworkConfig.parse(stdin, subnetFileOptional: environment.command == .del)
            versionText = config.cniVersionText
            let context = Context(environment: environment, config: config, stdin: stdin)
            switch environment.command {
            case .add: return Outcome(stdout: try Add(context).run().serialized() + "\n", exitCode: 0)
            case .del: try Delete(context).run()
            case .check: try Check(context).run()
            case .gc: try GarbageCollect(context).run()
            case .status: try Status(context).run()
            case .version: break
            }
            return Outcome(stdout: "", exitCode: 0)
        } catch {
            return Outcome(stdout: error.json(cniVersion: versionText).serialized() + "\n", exitCode: 1)
        }
    }

    static func version(stdin: [UInt8]) throws(CNIError) -> JSONValue {
        let requested = try NetworkConfig.versionOnly(stdin) ?? CNIVersion.latest.description
        return .object([
            "cniVersion": .string(requested),
            "supportedVersions": .array(CNIVersion.supported.map { .string($0.description) }),
        ])
    }
}

/// Everything one invocation knows.
struct Context {
    let environment: Environment
    let config: NetworkConfig
    let stdin: [UInt8]

    var owner: LeaseOwner { LeaseOwner(containerID: environment.containerID, ifname: environment.ifname) }

    var ipam: IPAMBackend { IPAMBackend(config: config, environment: environment, stdin: stdin) }

    /// Refuses a verb that the config's `cniVersion` predates.
    func require(_ minimum: CNIVersion, for verb: String) throws(CNIError) {
        guard config.cniVersion >= minimum else {
            throw CNIError(.incompatibleVersion, "\(verb) needs cniVersion \(minimum) or later, the config says \(config.cniVersionText)")
        }
    }
}

