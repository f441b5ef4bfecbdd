#if canImport(Glibc)
import Glibc
#endif
import BridgePlugin
import CNI
import RoutesCommand
import SystemIO

// With arguments, the binary is the node tool (`bridge-ipam routes sync ...`, `--version`,
// `--help`); runtimes call the CNI plugin without any.
let arguments = CommandLine.arguments.dropFirst()
let usage = "usage: bridge-ipam --help | --version\n\(RoutesCommand.usage)\n"
switch arguments.first {
case nil: break
case "routes": exit(RoutesCommand.run(Array(arguments.dropFirst())))
case let flag? where ["--version", "--help", "-h"].contains(flag) && arguments.count > 1:
    writeError("bridge-ipam: \(flag) takes no arguments\n\(usage)")
    exit(2)
case "--version":
    writeOut(Usage.version)
    exit(0)
case "--help", "-h":
    writeOut(Usage.help)
    exit(0)
case let first?:
    writeError("bridge-ipam: unknown argument \(first)\n\(usage)")
    exit(2)
}

func writeOut(_ text: String) { try? FileIO.writeAll(1, Array(text.utf8), path: "standard output") }

// The process's environment, handed to the plugin: nothing below main reads it on its own.
let environment = EnvironmentVariables.process()
// A person at a terminal, not a runtime (runtimes always set CNI_COMMAND, and never give the
// plugin a terminal): say what this is rather than wait on stdin or print only a CNI error.
if (environment["CNI_COMMAND"] ?? "").isEmpty && (isatty(0) == 1 || isatty(1) == 1) {
    writeError(Usage.version + "\n" + Usage.byHand)
    exit(2)
}
// The network configuration; a read error leaves it empty, which the plugin reports (code 6).
let outcome = Plugin.run(environment: environment, stdin: (try? FileIO.readAll(0, path: "standard input")) ?? [])
writeOut(outcome.stdout)
exit(outcome.exitCode)
