#if canImport(Glibc)
import Glibc
#endif
import BridgePlugin
import ClusterRoutes

// With arguments, the binary is the node tool (`bridge-ipam routes sync ...`); runtimes call the
// CNI plugin without any.
let arguments = CommandLine.arguments.dropFirst()
if arguments.first == "routes" {
    exit(RoutesCommand.run(Array(arguments.dropFirst())))
} else if let first = arguments.first {
    writeError("bridge-ipam: unknown command \(first)\n\(RoutesCommand.usage)\n")
    exit(2)
}

/// Reads all of stdin (the network configuration).
func readStandardInput() -> [UInt8] {
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 16 * 1024)
    while true {
        let n = chunk.withUnsafeMutableBytes { read(0, $0.baseAddress, $0.count) }
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { break }
        bytes += chunk[..<n]
    }
    return bytes
}

let outcome = Plugin.run(stdin: readStandardInput())
var text = Array(outcome.stdout.utf8)
var written = 0
while written < text.count {
    let n = text.withUnsafeBytes { write(1, $0.baseAddress! + written, $0.count - written) }
    if n < 0 && errno == EINTR { continue }
    if n <= 0 { break }
    written += n
}
exit(outcome.exitCode)
