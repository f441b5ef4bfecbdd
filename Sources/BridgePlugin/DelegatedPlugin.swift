#if canImport(Glibc)
import Glibc
#endif
import CNI
import JSON

/// Another CNI plugin run as the spec describes delegation: found by `type` in CNI_PATH, given
/// our stdin and environment (with CNI_COMMAND set to the verb), its stdout read back.
struct DelegatedPlugin {
    let type: String
    let environment: Environment
    let stdin: [UInt8]

    var searchPath: [String] { environment.path }

    func executablePath() throws(CNIError) -> String {
        guard !type.contains("/"), !type.isEmpty else {
            throw CNIError(.invalidConfig, "invalid network configuration: ipam.type \"\(type)\" must be a plugin name, not a path")
        }
        for dir in searchPath {
            let candidate = dir.hasSuffix("/") ? dir + type : dir + "/" + type
            if access(candidate, X_OK) == 0 { return candidate }
        }
        throw CNIError(
            .delegateFailure, "IPAM plugin \"\(type)\" not found",
            details: "looked in CNI_PATH: \(searchPath.joined(separator: ":"))")
    }

    /// Runs the plugin; returns its stdout as JSON (nil when empty) or throws its CNI error.
    func run(command: Command) throws(CNIError) -> JSONValue? {
        let path = try executablePath()
        var inPipe: [Int32] = [0, 0]
        var outPipe: [Int32] = [0, 0]
        guard pipeClosedOnExec(&inPipe) else { throw failure("pipe") }
        guard pipeClosedOnExec(&outPipe) else {
            close(inPipe[0])
            close(inPipe[1])
            throw failure("pipe")
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, inPipe[0], 0)
        posix_spawn_file_actions_adddup2(&actions, outPipe[1], 1)

        let variables = environment.variables.all.filter { $0.name != "CNI_COMMAND" } + [("CNI_COMMAND", command.rawValue)]
        let argv: [UnsafeMutablePointer<CChar>?] = [strdup(path), nil]
        let envp: [UnsafeMutablePointer<CChar>?] = variables.map { strdup("\($0.name)=\($0.value)") } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }

        // A plugin that exits without reading all of its stdin must not kill us with SIGPIPE: the
        // write then fails with EPIPE and the plugin's answer is still read. The child gets the
        // default disposition back (an ignored signal would stay ignored across exec).
        signal(SIGPIPE, SIG_IGN)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var defaults = sigset_t()
        sigemptyset(&defaults)
        sigaddset(&defaults, SIGPIPE)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGDEF))

        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, path, &actions, &attributes, argv, envp)
        close(inPipe[0])
        close(outPipe[1])
        guard spawned == 0 else {
            close(inPipe[1])
            close(outPipe[0])
            throw CNIError(.delegateFailure, "cannot run IPAM plugin \(path)", details: String(cString: strerror(spawned)))
        }
        let output = exchange(input: inPipe[1], output: outPipe[0])
        close(outPipe[0])
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let exited = (status & 0x7F) == 0
        let exitCode = (status >> 8) & 0xFF

        let text = String(decoding: output, as: UTF8.self)
        let value = text.allSatisfy(\.isWhitespace) ? nil : try? JSONValue.parse(output)
        if exited && exitCode == 0 { return value }
        if let o = value?.objectValue, let code = o["code"]?.intValue {
            throw CNIError(
                code: code, msg: o["msg"]?.stringValue ?? "IPAM plugin \(type) failed",
                details: o["details"]?.stringValue ?? "")
        }
        throw CNIError(
            .delegateFailure, "IPAM plugin \(type) failed (\(exited ? "exit \(exitCode)" : "killed by signal \(status & 0x7F)"))",
            details: String(text.prefix(500)))
    }

    /// Writes our stdin to the child while reading its stdout, until it closes its stdout: a
    /// child that never reads a config larger than a pipe, or writes much before reading, cannot
    /// block us (SIGPIPE is ignored, so a child that closes its stdin early just ends the input).
    private func exchange(input: Int32, output: Int32) -> [UInt8] {
        _ = fcntl(input, F_SETFL, fcntl(input, F_GETFL) | O_NONBLOCK)
        var inputOpen = true
        var written = 0
        var result: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        defer { if inputOpen { close(input) } }
        if stdin.isEmpty {
            close(input)
            inputOpen = false
        }
        while true {
            var fds = [
                pollfd(fd: output, events: Int16(POLLIN), revents: 0),
                pollfd(fd: inputOpen ? input : -1, events: Int16(POLLOUT), revents: 0),
            ]
            if poll(&fds, 2, -1) < 0 {
                if errno == EINTR { continue }
                break
            }
            if inputOpen && fds[1].revents != 0 {
                let n = stdin.withUnsafeBytes { write(input, $0.baseAddress! + written, $0.count - written) }
                if n > 0 { written += n }
                if (n < 0 && errno != EAGAIN && errno != EINTR) || written == stdin.count {
                    close(input)
                    inputOpen = false
                }
            }
            if fds[0].revents != 0 {
                let n = chunk.withUnsafeMutableBytes { read(output, $0.baseAddress, $0.count) }
                if n < 0 && (errno == EINTR || errno == EAGAIN) { continue }
                if n <= 0 { break }
                result += chunk[..<n]
            }
        }
        return result
    }

    private func failure(_ what: String) -> CNIError {
        CNIError(.delegateFailure, "cannot run IPAM plugin \(type): \(what) failed", details: String(cString: strerror(errno)))
    }
}

/// A pipe whose ends are not inherited by spawned children (they get dup2'd copies only),
/// so the child sees end-of-file on stdin once we close our end.
private func pipeClosedOnExec(_ fds: inout [Int32]) -> Bool {
    guard pipe(&fds) == 0 else { return false }
    _ = fcntl(fds[0], F_SETFD, FD_CLOEXEC)
    _ = fcntl(fds[1], F_SETFD, FD_CLOEXEC)
    return true
}
