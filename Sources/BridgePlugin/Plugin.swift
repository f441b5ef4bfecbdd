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

    /// Runs the verb named by `environment` (the process's variables, read once by `main`) on
    /// the configuration in `stdin`. With `logFile` in the config, the invocation is logged.
    @available(*, noasync, message: "the plugin enters network namespaces and must stay on one thread")
    public static func run(environment variables: EnvironmentVariables, stdin: [UInt8]) -> Outcome {
        // VERSION reads nothing but the input's cniVersion, and is not logged.
        if variables["CNI_COMMAND"] == Command.version.rawValue {
            do throws(CNIError) {
                return Outcome(stdout: try version(stdin: stdin).serialized() + "\n", exitCode: 0)
            } catch {
                return failure(error, cniVersion: CNIVersion.latest.description)
            }
        }
        let object: Result<JSONObject, CNIError>
        do throws(CNIError) { object = .success(try NetworkConfig.decodeObject(stdin)) } catch { object = .failure(error) }
        // Read before the environment is validated, so that such errors are logged too. A config
        // whose log settings are themselves invalid fails below with code 7, unlogged.
        let log = (try? object.get()).flatMap { try? LogSettings.parse(config: $0) }
        let started = log.map { _ in InvocationLog.Start.now() }
        let (outcome, reply) = perform(variables, config: object, stdin: stdin)
        if let log, let started {
            InvocationLog(settings: log).record(
                InvocationLog.Invocation(
                    variables: variables, network: (try? object.get())?["name"]?.stringValue,
                    stdin: stdin, stdout: outcome.stdout, reply: reply, started: started))
        }
        return outcome
    }

    /// How a verb ended, for the log.
    enum Reply {
        case done
        case result(JSONValue)
        case failed(CNIError)
    }

    /// `namespaces` is the kernel's, or a unit test's fakes.
    static func perform(
        _ variables: EnvironmentVariables, config object: Result<JSONObject, CNIError>, stdin: [UInt8],
        namespaces: any Namespaces = KernelNamespaces(), system: SubnetFileWait.System = .kernel
    ) -> (Outcome, Reply) {
        // Errors are written in the config's version when it has one.
        var versionText = (try? object.get())?["cniVersion"]?.stringValue ?? CNIVersion.latest.description
        do throws(CNIError) {
            let environment = try Environment.parse(variables)
            // ADD waits (bounded, holding no lock) for a subnet file not written yet: see SubnetFileWait.
            if environment.command == .add, let wait = try SubnetFileWait(config: try object.get()) { try wait.untilPresent(system) }
            // DEL must clean up also when the node's subnet file is gone (e.g. /run after a
            // reboot, before its agent rewrote it): it releases leases by owner, not by range.
            let config: NetworkConfig
            do throws(CNIError) {
                config = try NetworkConfig.parse(object: try object.get(), subnetFileOptional: environment.command == .del)
            } catch {
                // STATUS on a node whose subnet file is not written yet: code 50, not 7.
                if environment.command == .status, let parsed = try? object.get(), let unprovisioned = Status.unprovisioned(config: parsed)
                {
                    throw unprovisioned
                }
                throw error
            }
            versionText = config.cniVersionText
            let context = Context(environment: environment, config: config, stdin: stdin, namespaces: namespaces)
            switch environment.command {
            case .add:
                let result = try Add(context).run()
                return (Outcome(stdout: result.serialized() + "\n", exitCode: 0), .result(result))
            case .del: try Delete(context).run()
            case .check: try Check(context).run()
            case .gc: try GarbageCollect(context).run()
            case .status: try Status(context).run()
            case .version: break
            }
            return (Outcome(stdout: "", exitCode: 0), .done)
        } catch {
            return (failure(error, cniVersion: versionText), .failed(error))
        }
    }

    static func failure(_ error: CNIError, cniVersion: String) -> Outcome {
        Outcome(stdout: error.json(cniVersion: cniVersion).serialized() + "\n", exitCode: 1)
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
    /// The node's and the pod's network namespaces: the kernel's, or a test's fakes.
    let namespaces: any Namespaces

    init(environment: Environment, config: NetworkConfig, stdin: [UInt8], namespaces: any Namespaces = KernelNamespaces()) {
        self.environment = environment
        self.config = config
        self.stdin = stdin
        self.namespaces = namespaces
    }

    var owner: LeaseOwner { LeaseOwner(containerID: environment.containerID, ifname: environment.ifname) }

    var ipam: IPAMBackend { IPAMBackend(config: config, environment: environment, stdin: stdin) }

    /// Refuses a verb that the config's `cniVersion` predates.
    func require(_ minimum: CNIVersion, for verb: String) throws(CNIError) {
        guard config.cniVersion >= minimum else {
            throw CNIError(.incompatibleVersion, "\(verb) needs cniVersion \(minimum) or later, the config says \(config.cniVersionText)")
        }
    }
}
