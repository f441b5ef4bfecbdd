/// The verbs a runtime may ask for in `CNI_COMMAND`.
public enum Command: String, Sendable, CaseIterable {
    case add = "ADD"
    case del = "DEL"
    case check = "CHECK"
    case version = "VERSION"
    case gc = "GC"
    case status = "STATUS"
}

/// The `CNI_*` environment of one invocation, validated.
public struct Environment: Sendable, Equatable {
    public var command: Command
    public var containerID: String
    public var netns: String
    public var ifname: String
    public var args: [(key: String, value: String)]
    public var path: [String]
    /// Every variable of the invocation as given (delegated plugins are run with them).
    public var variables: EnvironmentVariables = [:]

    public static func == (l: Environment, r: Environment) -> Bool {
        l.command == r.command && l.containerID == r.containerID && l.netns == r.netns && l.ifname == r.ifname
            && l.path == r.path && l.args.map(\.key) == r.args.map(\.key) && l.args.map(\.value) == r.args.map(\.value)
    }

    /// Validates the invocation's variables, read once from the process by `main`.
    public static func parse(_ variables: EnvironmentVariables) throws(CNIError) -> Environment {
        var environment = try parse { variables[$0] }
        environment.variables = variables
        return environment
    }

    /// Validates the variables `lookup` returns. Every problem is named in one error (code 4).
    /// VERSION needs none but `CNI_COMMAND`: podman sets the others to "dummy" for it.
    public static func parse(_ lookup: (String) -> String?) throws(CNIError) -> Environment {
        guard let commandText = lookup("CNI_COMMAND"), !commandText.isEmpty else {
            throw CNIError(
                .invalidEnvironment, "CNI_COMMAND is not set",
                details: "expected one of \(Command.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        guard let command = Command(rawValue: commandText) else {
            throw CNIError(
                .invalidEnvironment, "unknown CNI_COMMAND \"\(commandText)\"",
                details: "expected one of \(Command.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        var env = Environment(command: command, containerID: "", netns: "", ifname: "", args: [], path: [])
        if command == .version { return env }

        var missing: [String] = []
        var invalid: [String] = []
        let perAttachment = command == .add || command == .del || command == .check
        let containerID = lookup("CNI_CONTAINERID") ?? ""
        if perAttachment {
            if containerID.isEmpty {
                missing.append("CNI_CONTAINERID")
            } else if !isValidContainerID(containerID) {
                invalid.append(
                    "CNI_CONTAINERID \"\(containerID)\" (must start with a letter or digit, then letters, digits, '_', '.', '-')")
            }
        }
        let netns = lookup("CNI_NETNS") ?? ""
        if (command == .add || command == .check) && netns.isEmpty { missing.append("CNI_NETNS") }
        let ifname = lookup("CNI_IFNAME") ?? ""
        if perAttachment {
            if ifname.isEmpty {
                missing.append("CNI_IFNAME")
            } else if !isValidInterfaceName(ifname) {
                invalid.append("CNI_IFNAME \"\(ifname)\" (must be 1-15 bytes without '/', ':', whitespace, and not '.' or '..')")
            }
        }
        let path = lookup("CNI_PATH") ?? ""
        if perAttachment && path.isEmpty { missing.append("CNI_PATH") }
        var args: [(key: String, value: String)] = []
        if let argsText = lookup("CNI_ARGS"), !argsText.isEmpty {
            for pair in argsText.split(separator: ";", omittingEmptySubsequences: true) {
                guard let eq = pair.firstIndex(of: "="), eq != pair.startIndex else {
                    invalid.append("CNI_ARGS entry \"\(pair)\" (expected KEY=VALUE)")
                    continue
                }
                args.append((String(pair[..<eq]), String(pair[pair.index(after: eq)...])))
            }
        }
        if !missing.isEmpty || !invalid.isEmpty {
            var parts: [String] = []
            if !missing.isEmpty { parts.append("missing \(missing.joined(separator: ", "))") }
            if !invalid.isEmpty { parts.append("invalid \(invalid.joined(separator: "; "))") }
            throw CNIError(
                .invalidEnvironment, "invalid CNI environment variables: " + parts.joined(separator: "; "),
                details: "the runtime must set them for \(command.rawValue)")
        }
        env.containerID = containerID
        env.netns = netns
        env.ifname = ifname
        env.args = args
        env.path = path.split(separator: ":").map(String.init)
        return env
    }

    public func arg(_ key: String) -> String? { args.last { $0.key == key }?.value }

    public static func isValidContainerID(_ id: String) -> Bool {
        guard let first = id.utf8.first, isAlnum(first) else { return false }
        return id.utf8.allSatisfy { isAlnum($0) || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "-") }
    }

    /// Linux's rules for a network interface name (dev_valid_name) plus no ':' (alias syntax).
    public static func isValidInterfaceName(_ name: String) -> Bool {
        let bytes = Array(name.utf8)
        guard !bytes.isEmpty, bytes.count < 16, name != ".", name != ".." else { return false }
        return bytes.allSatisfy { $0 > 0x20 && $0 != UInt8(ascii: "/") && $0 != UInt8(ascii: ":") && $0 != 0x7F }
    }

    /// A network name becomes a directory name under dataDir: alphanumeric start, then alnum `_.-`.
    public static func isValidNetworkName(_ name: String) -> Bool { isValidContainerID(name) }

    static func isAlnum(_ b: UInt8) -> Bool {
        (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A)
    }
}
