#if canImport(Glibc)
import Glibc
#endif
import CBuildInfo
import Netlink
import NodeAgent

// bridge-ipam's node agent: a separate program, so that the per-pod plugin links none of it.
//
// SIGTERM and SIGINT end the process at once. Nothing needs undoing: routes stay in the kernel
// (pods keep talking while the agent restarts), and every file is replaced by rename, so a stop
// at any instruction leaves the old file or the new one.
let onTerminate: @convention(c) (Int32) -> Void = { _ in
    // A signal handler may not allocate: a static message and a bare write(2), not Log.
    let message: StaticString = "bridge-ipam-agent: terminated; routes and files stay as they are\n"
    message.withUTF8Buffer { _ = write(2, $0.baseAddress, $0.count) }
    _exit(0)
}
var action = sigaction()
action.__sigaction_handler.sa_handler = onTerminate
sigemptyset(&action.sa_mask)
sigaction(SIGTERM, &action, nil)
sigaction(SIGINT, &action, nil)
signal(SIGPIPE, SIG_IGN)

var environment: [String: String] = [:]
var entry = environ
while let pointer = entry.pointee {
    let text = String(cString: pointer)
    if let eq = text.firstIndex(of: "=") { environment[String(text[..<eq])] = String(text[text.index(after: eq)...]) }
    entry += 1
}

let arguments = Array(CommandLine.arguments.dropFirst())
if arguments == ["--version"] {
    let commit = String(cString: bridge_ipam_git_commit())
    print("bridge-ipam-agent v\(String(cString: bridge_ipam_version()))\(commit.isEmpty ? "" : " (git \(commit))")")
    exit(0)
}
if arguments.contains("-h") || arguments.contains("--help") {
    print(AgentOptions.usage)
    exit(0)
}
if arguments == ["--remove-forward-accepts"] { exit(ServicesSetup.removeForwardAccepts()) }
let options: AgentOptions
do { options = try AgentOptions.parse(arguments, environment: environment) } catch {
    Log.line("\(error)\n\(AgentOptions.usage)")
    exit(2)
}
do {
    let connection =
        try options.kubeconfig.map { (path) throws(KubeConnection.Error) in try KubeConnection.kubeconfig(path: path) }
        ?? KubeConnection.inCluster(environment: environment)
    let agent = try Agent(options: options, connection: connection, socket: try NetlinkSocket(strictDumps: true))
    if options.networkPolicy { PolicyAgent(options: options, connection: connection).start() }
    exit(agent.run())
} catch {
    Log.line("\(error)")
    exit(1)
}
